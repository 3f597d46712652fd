-- One row per customer and day with any order line: purchases and returns kept apart.
-- Same-day orders are merged here, as the BTYD models require.
with order_lines as (
    select * from {{ ref('stg_shop__orders') }}
),

daily as (
    select
        customer_id,
        order_date as activity_date,
        sum(case when not is_return then line_revenue else 0 end) as purchase_revenue,
        -sum(case when is_return then line_revenue else 0 end) as returned_revenue,
        count(distinct case when not is_return and line_revenue > 0 then order_id end) as purchase_orders_count,
        count(case when not is_return and line_revenue > 0 then 1 end) as purchase_lines_count
    from order_lines
    group by 1, 2
)

select
    *,
    purchase_revenue > 0 as is_purchase_day
from daily
