-- Feature family attributes: per known customer and cutoff, the customer record as known at the end of the
-- cutoff's day (country, acquisition channel, days since signup), how much shop history a 365-day window
-- can see at the cutoff (early cutoffs see less than a year) and the cutoff's month (season).
with known as (
    select * from {{ ref('int_features__rfm') }}
),

orders as (
    select * from {{ ref('int_order_versions') }}
),

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

shop_history as (
    select
        cutoffs.cutoff_date,
        least({{ dbt.datediff('min(orders.order_date)', 'cutoffs.cutoff_date', 'day') }} + 1, 365)
            as observable_history_days
    from {{ ref('int_cutoffs') }} as cutoffs
    inner join orders
        on {{ on_or_before('orders.order_date', 'cutoffs.cutoff_date') }}
        and {{ valid_at_end_of('orders', 'cutoffs.cutoff_date') }}
    where cutoffs.to_build
    group by cutoffs.cutoff_date
)

select
    known.customer_id,
    known.cutoff_date,
    customers.country,
    customers.acquisition_channel,
    case
        when customers.signup_date <= known.cutoff_date
        then {{ dbt.datediff('customers.signup_date', 'known.cutoff_date', 'day') }}
    end as days_since_signup,
    shop_history.observable_history_days,
    extract(month from known.cutoff_date) as cutoff_month
from known
inner join shop_history
    on shop_history.cutoff_date = known.cutoff_date
left join customers
    on customers.customer_id = known.customer_id
    and {{ valid_at_end_of('customers', 'known.cutoff_date') }}
