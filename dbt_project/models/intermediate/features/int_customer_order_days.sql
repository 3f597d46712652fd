-- One row per customer, day with orders and cutoff this build computes (int_cutoffs.to_build): the orders
-- dated on or before the cutoff, each in the version known at the end of the cutoff's day, order values
-- capped at the cutoff's cap (int_order_value_caps). The base the order-based feature families aggregate;
-- at a carried scoring cutoff, only for the customers recomputed there (macro only_customers_to_recompute).
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    where to_build
),

orders as (
    select * from {{ ref('int_order_versions') }}
),

order_value_caps as (
    select * from {{ ref('int_order_value_caps') }}
),

capped_order_history as (
    select
        cutoffs.cutoff_date,
        orders.customer_id,
        orders.order_date,
        orders.purchase_value > 0 as is_purchase_order,
        orders.purchase_lines_count,
        {{ capped('orders.purchase_value', 'order_value_caps.order_value_cap') }} as purchase_value,
        {{ capped('orders.returned_value', 'order_value_caps.order_value_cap') }} as returned_value
    from cutoffs
    inner join orders
        on {{ on_or_before('orders.order_date', 'cutoffs.cutoff_date') }}
        and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
    inner join order_value_caps on order_value_caps.cutoff_date = cutoffs.cutoff_date
    where {{ only_customers_to_recompute('cutoffs', 'orders.customer_id') }}
)

select
    cutoff_date,
    customer_id,
    order_date as activity_date,
    sum(purchase_value) > 0 as is_purchase_day,
    sum(purchase_value) as purchase_revenue,
    sum(returned_value) as returned_revenue,
    count(case when is_purchase_order then 1 end) as purchase_orders_count,
    sum(purchase_lines_count) as purchase_lines_count,
    {{ dbt.datediff('order_date', 'cutoff_date', 'day') }} as days_before_cutoff
from capped_order_history
group by 1, 2, 3
