-- Purchase days (days with positive purchase revenue) with the gap to the previous one, and each
-- customer's first purchase day. A gap belongs to the history of every cutoff on or after its day.
with daily as (
    select * from {{ ref('int_customer_daily_activity') }}
    where is_purchase_day
),

ordered as (
    select
        customer_id,
        activity_date as purchase_date,
        purchase_revenue,
        lag(activity_date) over (partition by customer_id order by activity_date) as previous_purchase_date,
        min(activity_date) over (partition by customer_id) as first_purchase_date
    from daily
)

select
    customer_id,
    purchase_date,
    purchase_revenue,
    first_purchase_date,
    purchase_date = first_purchase_date as is_first_purchase,
    case
        when previous_purchase_date is not null
        then {{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}
    end as days_since_previous_purchase
from ordered
