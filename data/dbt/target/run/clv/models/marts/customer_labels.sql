
    

    create  table
      "accuracy-online-retail"."main"."customer_labels__dbt_tmp"
  
    
    as (
      -- What each customer known at a training cutoff actually spent in the horizon after it:
-- net revenue (purchases minus returns, floored at zero) of orders dated in (cutoff, cutoff + horizon_days],
-- order values capped at the cutoff's cap like the features.
with cutoffs as (
    select * from "accuracy-online-retail"."main"."int_cutoffs"
    where cutoff_role = 'training'
),

features as (
    select customer_id, cutoff_date from "accuracy-online-retail"."main"."customer_features"
),

orders as (
    select * from "accuracy-online-retail"."main"."int_orders"
),

order_value_caps as (
    select * from "accuracy-online-retail"."main"."int_order_value_caps"
),

future_orders as (
    select
        cutoffs.cutoff_date,
        orders.customer_id,
        orders.purchase_value > 0 as is_purchase_order,
        
    case when order_value_caps.order_value_cap is not null and orders.purchase_value > order_value_caps.order_value_cap then order_value_caps.order_value_cap else orders.purchase_value end
            - 
    case when order_value_caps.order_value_cap is not null and orders.returned_value > order_value_caps.order_value_cap then order_value_caps.order_value_cap else orders.returned_value end as net_value
    from cutoffs
    inner join order_value_caps on order_value_caps.cutoff_date = cutoffs.cutoff_date
    inner join orders
        on orders.order_date > cutoffs.cutoff_date
        and orders.order_date <= cast(

    (cutoffs.cutoff_date + cast(cutoffs.horizon_days as bigint) * interval 1 day) as date)
),

future_activity as (
    select
        cutoff_date,
        customer_id,
        sum(net_value) as net_revenue,
        count(case when is_purchase_order then 1 end) as orders_count
    from future_orders
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
    );
    
  