-- Order lines, cleaned. Business rules:
--   * lines without a customer id are dropped (they cannot be attributed to anyone);
--   * a line is a return when its quantity is negative (Online Retail's C invoices carry negative quantities);
--   * lines with a zero or negative unit price are kept for counts but carry no revenue.
--   * a line the source identifies (line_id) may arrive again with other values (an OLTP row edited
--     after an earlier extraction): the latest landed version of each line is kept.
with landed as (
    select * from {{ source('shop', 'orders') }}
),

line_versions as (
    select
        *,
        row_number() over (partition by line_id order by loaded_at desc, row_key) as version_rank
    from landed
    where line_id is not null
),

source as (
    select row_key, customer_id, order_id, product_id, quantity, unit_price, order_ts
    from landed
    where line_id is null
    union all
    select row_key, customer_id, order_id, product_id, quantity, unit_price, order_ts
    from line_versions
    where version_rank = 1
),

cleaned as (
    select
        -- ids
        row_key as order_line_id,
        customer_id,
        order_id,
        product_id,

        -- numerics
        quantity,
        unit_price,
        case when unit_price > 0 then quantity * unit_price else 0 end as line_revenue,
        quantity < 0 as is_return,

        -- timestamps
        order_ts as ordered_at,
        cast(order_ts as date) as order_date

    from source
    where customer_id is not null
)

select * from cleaned
