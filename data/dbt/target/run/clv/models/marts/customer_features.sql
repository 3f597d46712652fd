
    

    create  table
      "accuracy-online-retail"."main"."customer_features__dbt_tmp"
  
    
    as (
      -- Customer features at every cutoff of this build: one row per customer known at the cutoff
-- (first purchase on or before it) and cutoff date. Only rows dated on or before the cutoff are read,
-- so adding later orders changes nothing here. Windows of N days cover (cutoff - N days, cutoff].
-- Order values are capped at the cutoff's cap (int_order_value_caps) before any revenue feature.


with cutoffs as (
    select * from "accuracy-online-retail"."main"."int_cutoffs"
),

orders as (
    select * from "accuracy-online-retail"."main"."int_orders"
),

order_value_caps as (
    select * from "accuracy-online-retail"."main"."int_order_value_caps"
),

purchase_days as (
    select * from "accuracy-online-retail"."main"."int_customer_purchase_days"
),

order_lines as (
    select * from "accuracy-online-retail"."main"."stg_shop__orders"
),

sessions as (
    select * from "accuracy-online-retail"."main"."int_customer_sessions"
),

customers as (
    select * from "accuracy-online-retail"."main"."stg_shop__customers"
),

known_customers as (
    select distinct
        cutoffs.cutoff_date,
        purchase_days.customer_id,
        purchase_days.first_purchase_date
    from cutoffs
    inner join purchase_days
        on purchase_days.is_first_purchase
        and purchase_days.first_purchase_date <= cutoffs.cutoff_date
),

capped_order_history as (
    select
        cutoffs.cutoff_date,
        orders.customer_id,
        orders.order_date,
        orders.purchase_value > 0 as is_purchase_order,
        orders.purchase_lines_count,
        
    case when order_value_caps.order_value_cap is not null and orders.purchase_value > order_value_caps.order_value_cap then order_value_caps.order_value_cap else orders.purchase_value end as purchase_value,
        
    case when order_value_caps.order_value_cap is not null and orders.returned_value > order_value_caps.order_value_cap then order_value_caps.order_value_cap else orders.returned_value end as returned_value
    from cutoffs
    inner join orders on orders.order_date <= cutoffs.cutoff_date
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
        
        (date_diff('day', order_date::timestamp, cutoff_date::timestamp ))
     as days_before_cutoff
    from capped_order_history
    group by 1, 2, 3
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
        
        sum(case when days_before_cutoff < 30 then purchase_orders_count else 0 end) as orders_count_30d,
        sum(case when days_before_cutoff < 30 then purchase_revenue - returned_revenue else 0 end) as revenue_sum_30d,
        sum(case when days_before_cutoff < 30 then purchase_revenue else 0 end) as purchase_revenue_30d,
        
        sum(case when days_before_cutoff < 90 then purchase_orders_count else 0 end) as orders_count_90d,
        sum(case when days_before_cutoff < 90 then purchase_revenue - returned_revenue else 0 end) as revenue_sum_90d,
        sum(case when days_before_cutoff < 90 then purchase_revenue else 0 end) as purchase_revenue_90d,
        
        sum(case when days_before_cutoff < 365 then purchase_orders_count else 0 end) as orders_count_365d,
        sum(case when days_before_cutoff < 365 then purchase_revenue - returned_revenue else 0 end) as revenue_sum_365d,
        sum(case when days_before_cutoff < 365 then purchase_revenue else 0 end) as purchase_revenue_365d,
        
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
        cutoffs.cutoff_date,
        purchase_days.customer_id,
        avg(purchase_days.days_since_previous_purchase) as mean_days_between_orders,
        stddev_samp(purchase_days.days_since_previous_purchase) as std_days_between_orders
    from cutoffs
    inner join purchase_days
        on purchase_days.purchase_date <= cutoffs.cutoff_date
        and purchase_days.days_since_previous_purchase is not null
    group by 1, 2
),

product_summary as (
    select
        cutoffs.cutoff_date,
        order_lines.customer_id,
        
        count(distinct case
            when 
        (date_diff('day', order_lines.order_date::timestamp, cutoffs.cutoff_date::timestamp ))
     < 30
            then order_lines.product_id end) as distinct_products_30d,
        
        count(distinct case
            when 
        (date_diff('day', order_lines.order_date::timestamp, cutoffs.cutoff_date::timestamp ))
     < 90
            then order_lines.product_id end) as distinct_products_90d,
        
        count(distinct case
            when 
        (date_diff('day', order_lines.order_date::timestamp, cutoffs.cutoff_date::timestamp ))
     < 365
            then order_lines.product_id end) as distinct_products_365d,
        
        count(distinct order_lines.product_id) as distinct_products_count
    from cutoffs
    inner join order_lines
        on order_lines.order_date <= cutoffs.cutoff_date
        and not order_lines.is_return
        and order_lines.line_revenue > 0
    group by 1, 2
),

session_history as (
    select
        cutoffs.cutoff_date,
        sessions.*,
        
        (date_diff('day', sessions.session_date::timestamp, cutoffs.cutoff_date::timestamp ))
     as days_before_cutoff
    from cutoffs
    inner join sessions on sessions.session_date <= cutoffs.cutoff_date
),

session_summary as (
    select
        cutoff_date,
        customer_id,
        
        count(case when days_before_cutoff < 30 then 1 end) as sessions_count_30d,
        avg(case when days_before_cutoff < 30 then session_duration_s end) as session_duration_s_mean_30d,
        sum(case when days_before_cutoff < 30 then add_to_cart_count else 0 end) as add_to_cart_count_30d,
        
        count(case when days_before_cutoff < 90 then 1 end) as sessions_count_90d,
        avg(case when days_before_cutoff < 90 then session_duration_s end) as session_duration_s_mean_90d,
        sum(case when days_before_cutoff < 90 then add_to_cart_count else 0 end) as add_to_cart_count_90d,
        
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
        
        (date_diff('day', orders.last_purchase_date::timestamp, known.cutoff_date::timestamp ))
     as days_since_last_order,
        orders.purchase_days_count as order_days_count,
        orders.orders_count,
        orders.purchase_revenue / nullif(orders.orders_count, 0) as avg_order_value,
        
        (date_diff('day', known.first_purchase_date::timestamp, known.cutoff_date::timestamp ))
     as tenure_days,
        orders.purchase_revenue - orders.returned_revenue as revenue_total,

        -- BTYD inputs, as lifetimes' summary_data_from_transaction_data (freq = day) defines them
        orders.purchase_days_count - 1 as btyd_frequency,
        
        (date_diff('day', known.first_purchase_date::timestamp, orders.last_purchase_date::timestamp ))
     as btyd_recency,
        
        (date_diff('day', known.first_purchase_date::timestamp, known.cutoff_date::timestamp ))
     as btyd_t,
        case
            when orders.purchase_days_count > 1
            then (orders.purchase_revenue - first_purchase.first_purchase_revenue) / (orders.purchase_days_count - 1)
            else 0
        end as btyd_monetary_value,

        -- rolling windows
        
        orders.orders_count_30d,
        orders.revenue_sum_30d,
        coalesce(products.distinct_products_30d, 0) as distinct_products_30d,
        
        orders.orders_count_90d,
        orders.revenue_sum_90d,
        coalesce(products.distinct_products_90d, 0) as distinct_products_90d,
        
        orders.orders_count_365d,
        orders.revenue_sum_365d,
        coalesce(products.distinct_products_365d, 0) as distinct_products_365d,
        

        -- purchase pattern
        gaps.mean_days_between_orders,
        gaps.std_days_between_orders,
        coalesce(products.distinct_products_count, 0) as distinct_products_count,
        coalesce(products.distinct_products_count, 0) * 1.0 / nullif(orders.purchase_lines_count, 0) as product_diversity_ratio,
        orders.returned_revenue / nullif(orders.purchase_revenue, 0) as return_rate,
        orders.purchase_revenue_90d / nullif(orders.purchase_revenue, 0) as revenue_share_90d,

        -- behaviour (web/app sessions; zero when the customer has no sessions)
        
        coalesce(session_summary.sessions_count_30d, 0) as sessions_count_30d,
        session_summary.session_duration_s_mean_30d,
        coalesce(session_summary.add_to_cart_count_30d, 0) as add_to_cart_count_30d,
        
        coalesce(session_summary.sessions_count_90d, 0) as sessions_count_90d,
        session_summary.session_duration_s_mean_90d,
        coalesce(session_summary.add_to_cart_count_90d, 0) as add_to_cart_count_90d,
        
        session_summary.days_since_last_session,

        -- attributes
        customers.country,
        customers.acquisition_channel,
        case
            when customers.signup_date <= known.cutoff_date
            then 
        (date_diff('day', customers.signup_date::timestamp, known.cutoff_date::timestamp ))
    
        end as days_since_signup

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
    left join customers
        on customers.customer_id = known.customer_id
)

select * from joined
    );
    
  