-- Customer features at every cutoff of this build: one row per customer known at the cutoff (first
-- purchase on or before it) and cutoff date, the feature families (models/intermediate/features/) joined
-- on (customer_id, cutoff_date). The columns are the ones documented in _marts.yml, in that order: a
-- family's new column reaches this table when its YAML entry is added there, as the type it declares (the
-- contract: the same types on every engine, whatever each computes a count or a day difference as).
-- Point in time: the families read only rows dated on or before the cutoff, each in the version known at
-- the end of the cutoff's day, and sessions count only their events up to that day; so later orders,
-- corrections and deletions change nothing here, and a snapshot once built is kept: the families compute
-- only the cutoffs int_cutoffs marks to_build (the scoring cutoff and calendar cutoffs not built yet), and
-- this incremental table adds them; `clv run --full-refresh` rebuilds every snapshot, with the same rows.
-- Carried over: a weekly scoring snapshot starts from the last one built (int_cutoffs.carried_from). The
-- customers whose inputs changed since, or whose orders or sessions crossed a window's edge
-- (int_customers_changed_since_carried), are recomputed; every other customer's row is the same but for
-- the cutoff itself: the columns whose meta says `days_to_cutoff` count the days elapsed on, and the
-- shop's observable history and the cutoff's month are the new cutoff's. A new column that counts days to
-- the cutoff needs that meta (the full-refresh test fails without it).
-- depends_on: {{ ref('int_cutoffs') }}
-- depends_on: {{ ref('int_shop_history') }}
-- depends_on: {{ ref('int_customers_changed_since_carried') }}
{#- A build writes whole snapshots (every customer of each cutoff it computes, recomputed or carried over), so
    it replaces them by cutoff: the delete reads one column, not the customers of every snapshot kept. -#}
{{ config(materialized='incremental', unique_key='cutoff_date',
          incremental_strategy='delete+insert', on_schema_change='fail') }}

with recomputed as (
    select
        {%- for column in model.columns %}
        cast({{ column }} as {{ model.columns[column].data_type }}) as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('int_features__rfm') }}
    inner join {{ ref('int_features__order_windows') }} using (customer_id, cutoff_date)
    inner join {{ ref('int_features__purchase_pattern') }} using (customer_id, cutoff_date)
    inner join {{ ref('int_features__sessions') }} using (customer_id, cutoff_date)
    inner join {{ ref('int_features__attributes') }} using (customer_id, cutoff_date)
),

carried_over as (
    {%- if is_incremental() %}
    {%- set kept_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list %}
    {%- set new_columns = model.columns.keys() | reject('in', kept_columns) | list %}
    {%- if execute and kept_columns and new_columns %}
    {{ exceptions.raise_compiler_error(
        "customer_features gained column(s) " ~ new_columns | join(', ') ~ " that its kept snapshots lack: "
        ~ "rebuild them once with `clv run --full-refresh` (dbt: build --full-refresh); later weeks build "
        ~ "incrementally again") }}
    {%- endif %}
    select
        {%- for column in model.columns %}
        {%- set data_type = model.columns[column].data_type %}
        {%- set column_meta = model.columns[column].get('meta')
                              or model.columns[column].get('config', {}).get('meta') %}
        {%- if column == 'cutoff_date' %}
        cutoffs.cutoff_date
        {%- elif column == 'observable_history_days' %}
        cast(shop_history.observable_history_days as {{ data_type }}) as {{ column }}
        {%- elif column == 'cutoff_month' %}
        cast(extract(month from cutoffs.cutoff_date) as {{ data_type }}) as {{ column }}
        {%- elif (column_meta or {}).get('days_to_cutoff') %}
        cast(kept.{{ column }} + {{ dbt.datediff('cutoffs.carried_from', 'cutoffs.cutoff_date', 'day') }}
            as {{ data_type }}) as {{ column }}
        {%- else %}
        kept.{{ column }}
        {%- endif %}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('int_cutoffs') }} as cutoffs
    inner join {{ this }} as kept on kept.cutoff_date = cutoffs.carried_from
    inner join {{ ref('int_shop_history') }} as shop_history
        on shop_history.cutoff_date = cutoffs.cutoff_date
    left join {{ ref('int_customers_changed_since_carried') }} as changed
        on changed.cutoff_date = cutoffs.cutoff_date and changed.customer_id = kept.customer_id
    where cutoffs.to_build and changed.customer_id is null
    {%- else %}
    select * from recomputed
    where false  -- a first build or a full refresh carries nothing over
    {%- endif %}
)

select * from recomputed
union all
select * from carried_over
