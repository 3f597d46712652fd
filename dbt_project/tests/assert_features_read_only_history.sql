-- Point-in-time check: recompute the count features straight from the order lines dated on or before
-- each cutoff, in the versions known at the end of its day. Any customer where customer_features
-- disagrees (or is missing, or extra) fails the test.
with cutoffs as (  -- the snapshots this build computed (kept ones were checked when they were built)
    select * from {{ ref('int_cutoffs') }}
    where to_build
),

purchase_lines as (
    select * from {{ ref('stg_shop__orders') }}
    where not is_return and line_revenue > 0
),

features as (
    select * from {{ ref('customer_features') }}
    where cutoff_date in (select cutoffs.cutoff_date from cutoffs)
),

history as (
    select
        cutoffs.cutoff_date,
        purchase_lines.customer_id,
        count(distinct purchase_lines.order_id) as orders_count,
        count(distinct purchase_lines.order_date) as order_days_count,
        max(purchase_lines.order_date) as last_purchase_date,
        count(distinct purchase_lines.product_id) as distinct_products_count
    from cutoffs
    inner join purchase_lines
        on {{ on_or_before('purchase_lines.order_date', 'cutoffs.cutoff_date') }}
        and {{ valid_at_end_of('purchase_lines', 'cutoffs.cutoff_date') }}
    group by 1, 2
),

compared as (
    select
        coalesce(features.customer_id, history.customer_id) as customer_id,
        coalesce(features.cutoff_date, history.cutoff_date) as cutoff_date,
        features.customer_id is null as missing_in_features,
        history.customer_id is null as not_in_history,
        features.orders_count <> history.orders_count
            or features.order_days_count <> history.order_days_count
            or features.distinct_products_count <> history.distinct_products_count
            or features.days_since_last_order
                <> {{ dbt.datediff('history.last_purchase_date', 'features.cutoff_date', 'day') }}
            as values_differ
    from features
    full outer join history
        on history.customer_id = features.customer_id
        and history.cutoff_date = features.cutoff_date
)

select * from compared
where missing_in_features or not_in_history or values_differ
