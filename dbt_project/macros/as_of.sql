{#- As-of reads. Every landed row version is valid over [valid_from, valid_to) in business time
    (CLV_TIMEZONE); a cutoff date C reads the versions valid at the end of day C. -#}

{% macro beginning_of_time() %}cast('1900-01-01' as timestamp){% endmacro %}

{% macro end_of_time() %}cast('9999-12-31' as timestamp){% endmacro %}

{#- The instant just after day `day` ends: the next midnight. -#}
{% macro end_of_day(day) %}cast({{ dbt.dateadd('day', 1, day) }} as timestamp){% endmacro %}

{#- True when the row version of `relation` was the one known at the end of day `day`. -#}
{% macro valid_at_end_of(relation, day) -%}
    ({{ relation }}.valid_from < {{ end_of_day(day) }} and {{ relation }}.valid_to >= {{ end_of_day(day) }})
{%- endmacro %}

{#- A load time (stored in UTC) as wall-clock time in the business time zone. -#}
{% macro in_business_time(utc_timestamp) -%}
    cast(({{ utc_timestamp }} at time zone 'UTC') at time zone '{{ env_var("CLV_TIMEZONE", "UTC") or "UTC" }}' as timestamp)
{%- endmacro %}

{#- A row dated `day` belongs to the history of a cutoff `cutoff` (day on or before it): the join condition of
    every table read against the build's cutoffs. The second line restates what the first implies (both are
    known) as an equality, so the engine can hash-join: DuckDB runs a join of inequalities alone against a
    handful of cutoffs as a nested loop, 2.5x slower over ten million order lines. -#}
{% macro on_or_before(day, cutoff) -%}
    {{ day }} <= {{ cutoff }}
    and ({{ day }} is not null) = ({{ cutoff }} is not null)
{%- endmacro %}

{#- The latest `column` of `relation` as a literal, read when the model runs: an incremental model's filter
    on what landed since its last build compares with a constant, which the engine takes into the scan of the
    landed table (appended in load order, so only its newest blocks are read), where a comparison with a
    subquery reads every landed row. The beginning of time when the table is empty (or while parsing). -#}
{% macro latest_in(relation, column) -%}
    {%- set latest = none -%}
    {%- if execute -%}
        {%- set latest = run_query('select max(' ~ column ~ ') from ' ~ relation).columns[0].values()[0] -%}
    {%- endif -%}
    {%- if latest is none -%}
        {{ beginning_of_time() }}
    {%- else -%}
        cast('{{ latest }}' as timestamp)
    {%- endif -%}
{%- endmacro %}
