-- One row per order of a known customer and span of time in which none of its lines changed:
-- purchase value (non-return lines with a positive price) and returned value (returned lines, as a
-- positive number) kept apart, valid over [valid_from, valid_to). An order whose lines were never
-- edited or deleted (almost all) has one span, from the beginning to the end of time.
with order_lines as (
    select * from {{ ref('stg_shop__orders') }}
),

change_points as (
    select order_id, valid_from as changed_at from order_lines
    union
    select order_id, valid_to from order_lines
),

spans as (
    select
        order_id,
        changed_at as valid_from,
        lead(changed_at) over (partition by order_id order by changed_at) as valid_to
    from change_points
),

span_lines as (
    select
        spans.valid_from,
        spans.valid_to,
        order_lines.customer_id,
        order_lines.order_id,
        order_lines.order_date,
        order_lines.line_revenue,
        order_lines.is_return
    from spans
    inner join order_lines
        on order_lines.order_id = spans.order_id
        and order_lines.valid_from <= spans.valid_from
        and order_lines.valid_to >= spans.valid_to
    where spans.valid_to is not null
),

orders as (
    select
        customer_id,
        order_id,
        order_date,
        valid_from,
        valid_to,
        sum(case when not is_return then line_revenue else 0 end) as purchase_value,
        -sum(case when is_return then line_revenue else 0 end) as returned_value,
        count(case when not is_return and line_revenue > 0 then 1 end) as purchase_lines_count
    from span_lines
    group by 1, 2, 3, 4, 5
)

select * from orders
