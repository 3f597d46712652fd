-- Feature family purchase pattern: per known customer and cutoff, the days between purchase days (mean,
-- standard deviation) and the products bought: distinct products in the last N days (var
-- 'feature_windows_days') and ever, and distinct products per purchase line. A product counts in a
-- window when the customer's latest purchase of it up to the cutoff falls in the window.
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    where to_build
),

known as (
    select * from {{ ref('int_features__rfm') }}
),

order_lines as (
    select * from {{ ref('stg_shop__orders') }}
),

purchase_days as (
    select
        cutoff_date,
        customer_id,
        activity_date as purchase_date,
        lag(activity_date) over (partition by cutoff_date, customer_id order by activity_date)
            as previous_purchase_date
    from {{ ref('int_customer_order_days') }}
    where is_purchase_day
),

gap_summary as (
    select
        cutoff_date,
        customer_id,
        -- as floats on every engine (PostgreSQL's avg and stddev of integers are numeric)
        cast(avg({{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}) as {{ type_double() }})
            as mean_days_between_orders,
        cast(
            stddev_samp({{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}) as {{ type_double() }}
        ) as std_days_between_orders
    from purchase_days
    where previous_purchase_date is not null
    group by 1, 2
),

product_last_purchase as (
    select
        cutoffs.cutoff_date,
        order_lines.customer_id,
        order_lines.product_id,
        max(order_lines.order_date) as last_purchase_date
    from cutoffs
    inner join order_lines
        on {{ on_or_before('order_lines.order_date', 'cutoffs.cutoff_date') }}
        and {{ valid_at_end_of('order_lines', 'cutoffs.cutoff_date') }}
        and not order_lines.is_return
        and order_lines.line_revenue > 0
        and order_lines.product_id is not null
    where {{ only_customers_to_recompute('cutoffs', 'order_lines.customer_id') }}
    group by 1, 2, 3
),

product_summary as (
    select
        cutoff_date,
        customer_id,
        {% for w in var('feature_windows_days') %}
        count(case
            when {{ dbt.datediff('last_purchase_date', 'cutoff_date', 'day') }} < {{ w }}
            then 1 end) as distinct_products_{{ w }}d,
        {% endfor %}
        count(*) as distinct_products_count
    from product_last_purchase
    group by 1, 2
)

select
    known.customer_id,
    known.cutoff_date,
    gaps.mean_days_between_orders,
    gaps.std_days_between_orders,
    {% for w in var('feature_windows_days') %}
    coalesce(products.distinct_products_{{ w }}d, 0) as distinct_products_{{ w }}d,
    {% endfor %}
    coalesce(products.distinct_products_count, 0) as distinct_products_count,
    cast(coalesce(products.distinct_products_count, 0) as {{ type_double() }})
        / nullif(known.purchase_lines_count, 0) as product_diversity_ratio
from known
left join gap_summary as gaps
    on gaps.cutoff_date = known.cutoff_date and gaps.customer_id = known.customer_id
left join product_summary as products
    on products.cutoff_date = known.cutoff_date and products.customer_id = known.customer_id
