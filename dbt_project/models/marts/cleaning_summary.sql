-- How many rows each cleaning rule touched, so nothing is lost silently. One row per rule
-- (and per cutoff for the order value cap).
with raw_orders as (
    select * from {{ source('shop', 'orders') }}
),

order_lines as (  -- the current version of each line
    select * from {{ ref('stg_shop__orders') }}
    where valid_to = {{ end_of_time() }}
),

orders as (  -- the orders as known at each cutoff
    select * from {{ ref('int_order_versions') }}
),

order_value_caps as (
    select * from {{ ref('int_order_value_caps') }}
),

line_rules as (
    select
        'dropped: order line without customer id' as rule,
        cast(null as date) as cutoff_date,
        count(*) as rows_affected,
        cast(null as {{ type_double() }}) as threshold
    from raw_orders
    where customer_id is null

    union all

    select
        'netted: return line (negative quantity)' as rule, cast(null as date) as cutoff_date,
        count(*) as rows_affected, cast(null as {{ type_double() }}) as threshold
    from order_lines
    where is_return

    union all

    select
        'no revenue: line priced zero or less' as rule, cast(null as date) as cutoff_date,
        count(*) as rows_affected, cast(null as {{ type_double() }}) as threshold
    from order_lines
    where unit_price <= 0
),

capped_orders as (
    select
        'capped: purchase order value above the cap' as rule,
        order_value_caps.cutoff_date,
        count(orders.order_id) as rows_affected,
        max(order_value_caps.order_value_cap) as threshold
    from order_value_caps
    left join orders
        on orders.order_date <= order_value_caps.cutoff_date
        and {{ valid_at_end_of('orders', 'order_value_caps.cutoff_date') }}
        and orders.purchase_value > order_value_caps.order_value_cap
    group by 1, 2
)

select * from line_rules
union all
select * from capped_orders
