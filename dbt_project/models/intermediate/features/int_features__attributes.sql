-- Feature family attributes: per known customer and cutoff, the customer record as known at the end of the
-- cutoff's day (country, acquisition channel, days since signup), how much shop history a 365-day window
-- can see at the cutoff (int_shop_history) and the cutoff's month (season).
with known as (
    select * from {{ ref('int_features__rfm') }}
),

customers as (
    select * from {{ ref('stg_shop__customers') }}
),

shop_history as (
    select * from {{ ref('int_shop_history') }}
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
