{% test unique_since_last_build(model, column_name) %}
-- Values of the column held by more than one row, looking at the values of the rows landed (loaded_at)
-- since the last feature build: older rows were checked when they landed (a build whose check fails
-- builds no snapshot, so its rows stay "since the last build" until one passes). One pass over the
-- column instead of grouping every row each week; the first build checks the whole table.
{%- set builds = adapter.get_relation(database=target.database, schema=target.schema,
                                      identifier='int_feature_snapshot_builds')
                   if flags.INTROSPECT is not false else none %}
with checked as (
    select {{ column_name }} as checked_value
    from {{ model }}
    {% if builds is not none %}
    where loaded_at > (select coalesce(max(landed_through), {{ beginning_of_time() }}) from {{ builds }})
    {% endif %}
)

select {{ column_name }}, count(*) as occurrences
from {{ model }}
where {{ column_name }} in (select checked_value from checked)
group by {{ column_name }}
having count(*) > 1
{% endtest %}
