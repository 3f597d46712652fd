-- Feature family RFM-T and BTYD inputs: one row per customer known at a cutoff this build computes (first
-- purchase on or before it). Recency, frequency, spend and tenure; the BTYD summary as lifetimes'
-- summary_data_from_transaction_data (freq = day) defines it: purchase days, same-day orders merged.
-- The other families start from these rows: they are the customers customer_features describes.
with order_days as (
    select * from {{ ref('int_customer_order_days') }}
),

purchase_days as (
    select
        cutoff_date,
        customer_id,
        activity_date as purchase_date,
        purchase_revenue,
        min(activity_date) over (partition by cutoff_date, customer_id) as first_purchase_date
    from order_days
    where is_purchase_day
),

first_purchase as (
    select cutoff_date, customer_id, first_purchase_date, purchase_revenue as first_purchase_revenue
    from purchase_days
    where purchase_date = first_purchase_date
),

order_summary as (
    select
        cutoff_date,
        customer_id,
        max(case when is_purchase_day then activity_date end) as last_purchase_date,
        count(case when is_purchase_day then 1 end) as purchase_days_count,
        sum(purchase_orders_count) as orders_count,
        sum(purchase_lines_count) as purchase_lines_count,
        sum(purchase_revenue) as purchase_revenue,
        sum(returned_revenue) as returned_revenue
    from order_days
    group by 1, 2
)

select
    known.customer_id,
    known.cutoff_date,
    {{ dbt.datediff('orders.last_purchase_date', 'known.cutoff_date', 'day') }} as days_since_last_order,
    orders.purchase_days_count as order_days_count,
    orders.orders_count,
    orders.purchase_revenue / nullif(orders.orders_count, 0) as avg_order_value,
    {{ dbt.datediff('known.first_purchase_date', 'known.cutoff_date', 'day') }} as tenure_days,
    orders.purchase_revenue - orders.returned_revenue as revenue_total,
    orders.purchase_days_count - 1 as btyd_frequency,
    {{ dbt.datediff('known.first_purchase_date', 'orders.last_purchase_date', 'day') }} as btyd_recency,
    {{ dbt.datediff('known.first_purchase_date', 'known.cutoff_date', 'day') }} as btyd_t,
    case
        when orders.purchase_days_count > 1
        then (orders.purchase_revenue - known.first_purchase_revenue) / (orders.purchase_days_count - 1)
        else 0
    end as btyd_monetary_value,
    orders.returned_revenue / nullif(orders.purchase_revenue, 0) as return_rate,
    orders.purchase_lines_count,
    orders.purchase_revenue
from first_purchase as known
inner join order_summary as orders
    on orders.cutoff_date = known.cutoff_date and orders.customer_id = known.customer_id
