-- What each customer known at a training cutoff actually spent in the horizon after it:
-- net revenue (purchases minus returns, floored at zero) of days in (cutoff, cutoff + horizon_days].
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    where cutoff_role = 'training'
),

features as (
    select customer_id, cutoff_date from {{ ref('customer_features') }}
),

daily as (
    select * from {{ ref('int_customer_daily_activity') }}
),

future_activity as (
    select
        cutoffs.cutoff_date,
        daily.customer_id,
        sum(daily.purchase_revenue - daily.returned_revenue) as net_revenue,
        sum(daily.purchase_orders_count) as orders_count
    from cutoffs
    inner join daily
        on daily.activity_date > cutoffs.cutoff_date
        and daily.activity_date <= cast({{ dbt.dateadd('day', 'cutoffs.horizon_days', 'cutoffs.cutoff_date') }} as date)
    group by 1, 2
),

labels as (
    select
        features.customer_id,
        features.cutoff_date,
        cutoffs.horizon_days,
        case when coalesce(future_activity.net_revenue, 0) > 0 then future_activity.net_revenue else 0 end
            as future_revenue,
        coalesce(future_activity.orders_count, 0) as future_orders_count
    from features
    inner join cutoffs on cutoffs.cutoff_date = features.cutoff_date
    left join future_activity
        on future_activity.cutoff_date = features.cutoff_date
        and future_activity.customer_id = features.customer_id
)

select * from labels
