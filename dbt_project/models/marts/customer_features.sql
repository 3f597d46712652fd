-- Customer features at every cutoff of this build: one row per customer known at the cutoff
-- (first purchase on or before it) and cutoff date. Point in time: only rows dated on or before the
-- cutoff are read, each in the version known at the end of the cutoff's day (macro valid_at_end_of), and
-- sessions count only their events up to that day; so later orders, corrections and deletions change
-- nothing here, and a snapshot once built is kept: incremental runs add only the cutoffs not built yet
-- (and rebuild the scoring cutoff); `clv run --full-refresh` rebuilds all of them, with the same rows.
-- Windows of N days cover (cutoff - N days, cutoff].
-- Order values are capped at the cutoff's cap (int_order_value_caps) before any revenue feature.
{% set windows = [30, 90, 365] %}

{{ config(materialized='incremental', unique_key=['customer_id', 'cutoff_date'],
          incremental_strategy='delete+insert', on_schema_change='fail') }}

with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
    {% if is_incremental() %}
    where to_build  -- snapshots are kept, not rebuilt: the scoring cutoff and calendar cutoffs not built yet
    {% endif %}
),

orders as (
    select * from {{ ref('int_order_versions') }}
),

order_value_caps as (
    select * from {{ ref('int_order_value_caps') }}
),

order_lines as (
    select * from {{ ref('stg_shop__orders') }}
),

sessions as (
    select * from {{ ref('int_customer_sessions') }}
),

events as (
    select * from {{ ref('stg_shop__events') }}
),

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

-- How much shop history a 365-day window can see at each cutoff (early cutoffs see less than a year).
shop_history as (
    select
        cutoffs.cutoff_date,
        least({{ dbt.datediff('min(orders.order_date)', 'cutoffs.cutoff_date', 'day') }} + 1, 365)
            as observable_history_days
    from cutoffs
    inner join orders
        on orders.order_date <= cutoffs.cutoff_date
        and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
    group by cutoffs.cutoff_date
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
        on orders.order_date <= cutoffs.cutoff_date
        and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
    inner join order_value_caps on order_value_caps.cutoff_date = cutoffs.cutoff_date
),

daily_history as (
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
),

-- Purchase days known at each cutoff (days with purchase revenue; same-day orders merged, as the BTYD
-- models require), with the previous purchase day and the customer's first.
purchase_days as (
    select
        cutoff_date,
        customer_id,
        activity_date as purchase_date,
        purchase_revenue,
        lag(activity_date) over (partition by cutoff_date, customer_id order by activity_date)
            as previous_purchase_date,
        min(activity_date) over (partition by cutoff_date, customer_id) as first_purchase_date
    from daily_history
    where is_purchase_day
),

known_customers as (
    select cutoff_date, customer_id, first_purchase_date
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
        sum(returned_revenue) as returned_revenue,
        {% for w in windows %}
        sum(case when days_before_cutoff < {{ w }} then purchase_orders_count else 0 end) as orders_count_{{ w }}d,
        sum(case when days_before_cutoff < {{ w }} then purchase_revenue - returned_revenue else 0 end)
            as revenue_sum_{{ w }}d,
        sum(case when days_before_cutoff < {{ w }} then purchase_revenue else 0 end) as purchase_revenue_{{ w }}d,
        {% endfor %}
        -- the same season a year ago: what the customer spent in the 90 and 91-180 days after the
        -- cutoff's date one year earlier (seasonal shops repeat their calendar)
        sum(case when days_before_cutoff between 275 and 364 then purchase_revenue - returned_revenue else 0 end)
            as revenue_next_90d_last_year,
        sum(case when days_before_cutoff between 185 and 274 then purchase_revenue - returned_revenue else 0 end)
            as revenue_next_91_180d_last_year,
        count(*) as active_days_count
    from daily_history
    group by 1, 2
),

first_purchase as (
    select
        known.cutoff_date,
        known.customer_id,
        daily_history.purchase_revenue as first_purchase_revenue
    from known_customers as known
    inner join daily_history
        on daily_history.cutoff_date = known.cutoff_date
        and daily_history.customer_id = known.customer_id
        and daily_history.activity_date = known.first_purchase_date
),

gap_summary as (
    select
        cutoff_date,
        customer_id,
        avg({{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}) as mean_days_between_orders,
        stddev_samp({{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}) as std_days_between_orders
    from purchase_days
    where previous_purchase_date is not null
    group by 1, 2
),

-- A product counts in a window when the customer's latest purchase of it up to the cutoff falls in the
-- window (the same as "bought in the window", with one row per product instead of one per line).
product_last_purchase as (
    select
        cutoffs.cutoff_date,
        order_lines.customer_id,
        order_lines.product_id,
        max(order_lines.order_date) as last_purchase_date
    from cutoffs
    inner join order_lines
        on order_lines.order_date <= cutoffs.cutoff_date
        and {{ valid_at_end_of('order_lines', 'cutoffs.cutoff_date') }}
        and not order_lines.is_return
        and order_lines.line_revenue > 0
        and order_lines.product_id is not null
    group by 1, 2, 3
),

product_summary as (
    select
        cutoff_date,
        customer_id,
        {% for w in windows %}
        count(case
            when {{ dbt.datediff('last_purchase_date', 'cutoff_date', 'day') }} < {{ w }}
            then 1 end) as distinct_products_{{ w }}d,
        {% endfor %}
        count(*) as distinct_products_count
    from product_last_purchase
    group by 1, 2
),

-- Sessions as known at each cutoff, event by event: a session that ended by the cutoff's day counts
-- whole; one still running then counts only its events up to that day (its length: first to last of them).
finished_sessions as (
    select
        cutoffs.cutoff_date,
        sessions.customer_id,
        sessions.session_date,
        sessions.session_duration_s,
        sessions.add_to_cart_count
    from cutoffs
    inner join sessions on sessions.last_event_date <= cutoffs.cutoff_date
),

running_sessions as (
    select
        cutoffs.cutoff_date,
        events.customer_id,
        min(events.event_date) as session_date,
        {{ dbt.datediff('min(events.event_at)', 'max(events.event_at)', 'second') }} as session_duration_s,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_cart_count
    from cutoffs
    inner join sessions
        on sessions.session_date <= cutoffs.cutoff_date
        and sessions.last_event_date > cutoffs.cutoff_date
    inner join events
        on events.customer_id = sessions.customer_id
        and events.session_id = sessions.session_id
        and events.event_date <= cutoffs.cutoff_date
    group by cutoffs.cutoff_date, events.customer_id, events.session_id
),

session_history as (
    select
        known_sessions.*,
        {{ dbt.datediff('known_sessions.session_date', 'known_sessions.cutoff_date', 'day') }} as days_before_cutoff
    from (
        select * from finished_sessions
        union all
        select * from running_sessions
    ) as known_sessions
),

session_summary as (
    select
        cutoff_date,
        customer_id,
        {% for w in [30, 90] %}
        count(case when days_before_cutoff < {{ w }} then 1 end) as sessions_count_{{ w }}d,
        avg(case when days_before_cutoff < {{ w }} then session_duration_s end) as session_duration_s_mean_{{ w }}d,
        sum(case when days_before_cutoff < {{ w }} then add_to_cart_count else 0 end) as add_to_cart_count_{{ w }}d,
        {% endfor %}
        min(days_before_cutoff) as days_since_last_session
    from session_history
    group by 1, 2
),

joined as (
    select
        -- keys
        known.customer_id,
        known.cutoff_date,

        -- RFM-T
        {{ dbt.datediff('orders.last_purchase_date', 'known.cutoff_date', 'day') }} as days_since_last_order,
        orders.purchase_days_count as order_days_count,
        orders.orders_count,
        orders.purchase_revenue / nullif(orders.orders_count, 0) as avg_order_value,
        {{ dbt.datediff('known.first_purchase_date', 'known.cutoff_date', 'day') }} as tenure_days,
        orders.purchase_revenue - orders.returned_revenue as revenue_total,

        -- BTYD inputs, as lifetimes' summary_data_from_transaction_data (freq = day) defines them
        orders.purchase_days_count - 1 as btyd_frequency,
        {{ dbt.datediff('known.first_purchase_date', 'orders.last_purchase_date', 'day') }} as btyd_recency,
        {{ dbt.datediff('known.first_purchase_date', 'known.cutoff_date', 'day') }} as btyd_t,
        case
            when orders.purchase_days_count > 1
            then (orders.purchase_revenue - first_purchase.first_purchase_revenue) / (orders.purchase_days_count - 1)
            else 0
        end as btyd_monetary_value,

        -- rolling windows
        {% for w in windows %}
        orders.orders_count_{{ w }}d,
        orders.revenue_sum_{{ w }}d,
        coalesce(products.distinct_products_{{ w }}d, 0) as distinct_products_{{ w }}d,
        {% endfor %}
        orders.revenue_next_90d_last_year,
        orders.revenue_next_91_180d_last_year,

        -- purchase pattern
        gaps.mean_days_between_orders,
        gaps.std_days_between_orders,
        coalesce(products.distinct_products_count, 0) as distinct_products_count,
        coalesce(products.distinct_products_count, 0) * 1.0 / nullif(orders.purchase_lines_count, 0)
            as product_diversity_ratio,
        orders.returned_revenue / nullif(orders.purchase_revenue, 0) as return_rate,
        orders.purchase_revenue_90d / nullif(orders.purchase_revenue, 0) as revenue_share_90d,

        -- behaviour (web/app sessions; zero when the customer has no sessions)
        {% for w in [30, 90] %}
        coalesce(session_summary.sessions_count_{{ w }}d, 0) as sessions_count_{{ w }}d,
        session_summary.session_duration_s_mean_{{ w }}d,
        coalesce(session_summary.add_to_cart_count_{{ w }}d, 0) as add_to_cart_count_{{ w }}d,
        {% endfor %}
        session_summary.days_since_last_session,

        -- attributes
        customers.country,
        customers.acquisition_channel,
        case
            when customers.signup_date <= known.cutoff_date
            then {{ dbt.datediff('customers.signup_date', 'known.cutoff_date', 'day') }}
        end as days_since_signup,

        -- data coverage and season
        shop_history.observable_history_days,
        extract(month from known.cutoff_date) as cutoff_month

    from known_customers as known
    inner join order_summary as orders
        on orders.cutoff_date = known.cutoff_date and orders.customer_id = known.customer_id
    inner join first_purchase
        on first_purchase.cutoff_date = known.cutoff_date and first_purchase.customer_id = known.customer_id
    left join gap_summary as gaps
        on gaps.cutoff_date = known.cutoff_date and gaps.customer_id = known.customer_id
    left join product_summary as products
        on products.cutoff_date = known.cutoff_date and products.customer_id = known.customer_id
    left join session_summary
        on session_summary.cutoff_date = known.cutoff_date and session_summary.customer_id = known.customer_id
    inner join shop_history
        on shop_history.cutoff_date = known.cutoff_date
    left join customers
        on customers.customer_id = known.customer_id
        and {{ valid_at_end_of('customers', 'known.cutoff_date') }}
)

select * from joined
