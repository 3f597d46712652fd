-- Feature family rolling windows of orders: per known customer and cutoff, orders and net revenue in the
-- last N days for N in var('feature_windows_days'); windows of N days cover (cutoff - N days, cutoff].
-- Also the share of purchase revenue in the last 90 days and the same season a year ago.
with order_days as (
    select * from {{ ref('int_customer_order_days') }}
),

windows as (
    select
        cutoff_date,
        customer_id,
        {% for w in var('feature_windows_days') %}
        sum(case when days_before_cutoff < {{ w }} then purchase_orders_count else 0 end) as orders_count_{{ w }}d,
        sum(case when days_before_cutoff < {{ w }} then purchase_revenue - returned_revenue else 0 end)
            as revenue_sum_{{ w }}d,
        {% endfor %}
        sum(case when days_before_cutoff < 90 then purchase_revenue else 0 end) as purchase_revenue_90d,
        -- the same season a year ago: what the customer spent in the 90 and 91-180 days after the
        -- cutoff's date one year earlier (seasonal shops repeat their calendar)
        sum(case when days_before_cutoff between 275 and 364 then purchase_revenue - returned_revenue else 0 end)
            as revenue_next_90d_last_year,
        sum(case when days_before_cutoff between 185 and 274 then purchase_revenue - returned_revenue else 0 end)
            as revenue_next_91_180d_last_year
    from order_days
    group by 1, 2
)

select
    known.customer_id,
    known.cutoff_date,
    {% for w in var('feature_windows_days') %}
    windows.orders_count_{{ w }}d,
    windows.revenue_sum_{{ w }}d,
    {% endfor %}
    windows.purchase_revenue_90d / nullif(known.purchase_revenue, 0) as revenue_share_90d,
    windows.revenue_next_90d_last_year,
    windows.revenue_next_91_180d_last_year
from {{ ref('int_features__rfm') }} as known
inner join windows
    on windows.cutoff_date = known.cutoff_date and windows.customer_id = known.customer_id
