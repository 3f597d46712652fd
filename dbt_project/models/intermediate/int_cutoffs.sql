-- The cutoff dates of this build: one scoring cutoff (features only) and the training cutoffs
-- (features + labels). Training cutoffs come from the snapshot calendar (`training_cutoffs`: month ends
-- on a fixed grid, chosen by clv/snapshots.py) so they do not move with the scoring cutoff; a training
-- cutoff is kept only when it lies before the scoring cutoff. Labels are built for each of
-- `label_horizons` whose window ends on or before the scoring cutoff (see customer_labels). `to_build`: the
-- cutoffs whose features this build computes (the scoring cutoff and calendar cutoffs not built yet; all
-- of them on a full refresh). `carried_from`: for a scoring cutoff built on a kept warehouse, the latest
-- snapshot built before it by the same feature code (int_feature_snapshot_builds), and what had landed when
-- that one was built; customer_features then recomputes only the customers whose features may have changed
-- since (int_customers_changed_since_carried) and carries the others' rows over, their day counts moved on.
-- Null: every customer is computed (first build, full refresh, calendar cutoffs, feature code changed).
-- The scoring cutoff is the var cutoff_date, which clv always passes (the given cutoff, or the last date of
-- the order lines that count now: clv/snapshots.py); a dbt build run by hand without it uses the same rule.
{% set horizon_days = var('horizon_days') | int %}

with anchor as (
    {% if var('cutoff_date') %}
    select cast('{{ var("cutoff_date") }}' as date) as scoring_cutoff_date
    {% else %}
    select max(order_date) as scoring_cutoff_date from {{ ref('stg_shop__orders') }}
    where valid_to = {{ end_of_time() }}
    {% endif %}
),

calendar as (
    {% for day in var('training_cutoffs') %}
    select cast('{{ day }}' as date) as cutoff_date
    {% if not loop.last %}union all{% endif %}
    {% else %}
    select cast(null as date) as cutoff_date
    {% endfor %}
),

training as (
    select
        calendar.cutoff_date,
        'training' as cutoff_role,
        cast(row_number() over (order by calendar.cutoff_date desc) as integer) as snapshot_index
    from calendar
    inner join anchor on calendar.cutoff_date < anchor.scoring_cutoff_date
),

cutoffs as (
    select scoring_cutoff_date as cutoff_date, 'scoring' as cutoff_role, 0 as snapshot_index
    from anchor
    union all
    select cutoff_date, cutoff_role, snapshot_index from training
)

{#- Snapshots already in customer_features are kept (not rebuilt) unless this is a full refresh. Read by
    name, not ref: customer_features is built from this model. Compiling without a connection
    (`--no-introspect`, the Redshift SQL check in the tests) treats every snapshot as new. -#}
{% set built = adapter.get_relation(database=this.database, schema=this.schema, identifier='customer_features')
               if flags.INTROSPECT is not false else none %}
{% set build_log = adapter.get_relation(database=this.database, schema=this.schema,
                                        identifier='int_feature_snapshot_builds')
                   if flags.INTROSPECT is not false else none %}
{% set carrying = built is not none and build_log is not none and not flags.FULL_REFRESH %}

select
    cutoff_date,
    cutoff_role,
    snapshot_index,
    {{ horizon_days }} as horizon_days,
    {% if built is not none and not flags.FULL_REFRESH %}
    cutoff_role = 'scoring' or cutoff_date not in (select distinct cutoff_date from {{ built }})
    {% else %}
    true
    {% endif %} as to_build,
    carry_base.carried_from,
    carry_base.carried_landed_through
from cutoffs
left join (
    {% if carrying %}
    select cast(cutoff_date as date) as carried_from, cast(landed_through as timestamp) as carried_landed_through
    from {{ build_log }}
    where cutoff_date < (select scoring_cutoff_date from anchor)
        and cutoff_date in (select distinct cutoff_date from {{ built }})
        and feature_code = '{{ feature_code_fingerprint() }}'
    order by cutoff_date desc
    limit 1
    {% else %}
    select cast(null as date) as carried_from, cast(null as timestamp) as carried_landed_through
    {% endif %}
) as carry_base on cutoffs.cutoff_role = 'scoring'
