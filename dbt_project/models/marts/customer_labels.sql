-- What each customer known at a training cutoff actually spent in the horizon after it:
-- net revenue (purchases minus returns, floored at zero) of orders dated in (cutoff, cutoff + horizon_days],
-- order values capped at the cutoff's cap like the features. One row per customer, cutoff and label
-- horizon (`label_horizons`, default [horizon_days]); a horizon is labelled only when its whole window
-- ends on or before the scoring cutoff, so no label reads data the build does not have; once built it is
-- kept (incremental), a window is labelled in the first run after it matures. A label reads the
-- order versions known at the end of its window (what was known when it matured): a correction or a
-- deletion inside the window counts, one landed after it does not change a matured label.
{{ config(materialized='incremental', unique_key=['customer_id', 'cutoff_date', 'horizon_days'],
          incremental_strategy='delete+insert', on_schema_change='fail') }}
{% set horizons = var('label_horizons') or [var('horizon_days')] %}

with scoring as (
    select cutoff_date as scoring_cutoff_date from {{ ref('int_cutoffs') }}
    where cutoff_role = 'scoring'
),

label_horizons as (
    {% for h in horizons %}
    select {{ h | int }} as horizon_days
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

cutoffs as (
    select
        int_cutoffs.cutoff_date,
        label_horizons.horizon_days,
        cast({{ dbt.dateadd('day', 'label_horizons.horizon_days', 'int_cutoffs.cutoff_date') }} as date)
            as window_end_date
    from {{ ref('int_cutoffs') }} as int_cutoffs
    cross join label_horizons
    cross join scoring
    where int_cutoffs.cutoff_role = 'training'
        and cast({{ dbt.dateadd('day', 'label_horizons.horizon_days', 'int_cutoffs.cutoff_date') }} as date)
            <= scoring.scoring_cutoff_date
        {% if is_incremental() %}
        -- a matured label is kept: only windows that matured since the last build are added
        and not exists (
            select 1 from {{ this }} as built
            where built.cutoff_date = int_cutoffs.cutoff_date and built.horizon_days = label_horizons.horizon_days
        )
        {% endif %}
),

features as (
    select customer_id, cutoff_date from {{ ref('customer_features') }}
),

orders as (
    select * from {{ ref('int_order_versions') }}
),

order_value_caps as (
    select * from {{ ref('int_order_value_caps') }}
),

future_orders as (
    select
        cutoffs.cutoff_date,
        cutoffs.horizon_days,
        orders.customer_id,
        orders.purchase_value > 0 as is_purchase_order,
        {{ capped('orders.purchase_value', 'order_value_caps.order_value_cap') }}
            - {{ capped('orders.returned_value', 'order_value_caps.order_value_cap') }} as net_value
    from cutoffs
    inner join order_value_caps on order_value_caps.cutoff_date = cutoffs.cutoff_date
    inner join orders
        on orders.order_date > cutoffs.cutoff_date
        and {{ on_or_before('orders.order_date', 'cutoffs.window_end_date') }}
        and {{ valid_at_end_of('orders', 'cutoffs.window_end_date') }}
),

future_activity as (
    select
        cutoff_date,
        horizon_days,
        customer_id,
        sum(net_value) as net_revenue,
        count(case when is_purchase_order then 1 end) as orders_count
    from future_orders
    group by 1, 2, 3
),

labels as (
    select
        features.customer_id,
        features.cutoff_date,
        cutoffs.horizon_days,
        -- floored at zero; under half a cent is zero (what is left of purchases netted against their
        -- returns in floating point, whose sign depends on the order the warehouse sums in)
        case when coalesce(future_activity.net_revenue, 0) >= 0.005 then future_activity.net_revenue else 0 end
            as future_revenue,
        coalesce(future_activity.orders_count, 0) as future_orders_count
    from features
    inner join cutoffs on cutoffs.cutoff_date = features.cutoff_date
    left join future_activity
        on future_activity.cutoff_date = features.cutoff_date
        and future_activity.horizon_days = cutoffs.horizon_days
        and future_activity.customer_id = features.customer_id
)

select * from labels
