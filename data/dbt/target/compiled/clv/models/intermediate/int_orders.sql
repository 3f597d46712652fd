-- One row per order of a known customer: purchase value (non-return lines with a positive price) and
-- returned value (returned lines, as a positive number) kept apart.
with order_lines as (
    select * from "accuracy-online-retail"."main"."stg_shop__orders"
),

orders as (
    select
        customer_id,
        order_id,
        order_date,
        sum(case when not is_return then line_revenue else 0 end) as purchase_value,
        -sum(case when is_return then line_revenue else 0 end) as returned_value,
        count(case when not is_return and line_revenue > 0 then 1 end) as purchase_lines_count
    from order_lines
    group by 1, 2, 3
)

select * from orders