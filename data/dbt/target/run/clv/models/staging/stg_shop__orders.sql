
  
  create view "accuracy-online-retail"."main"."stg_shop__orders__dbt_tmp" as (
    -- Order lines, cleaned. Business rules:
--   * lines without a customer id are dropped (they cannot be attributed to anyone);
--   * a line is a return when its quantity is negative (Online Retail's C invoices carry negative quantities);
--   * lines with a zero or negative unit price are kept for counts but carry no revenue.
with source as (
    select * from "accuracy-online-retail"."raw"."orders"
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
  );
