
    

    create  table
      "accuracy-online-retail"."main"."int_customer_purchase_days__dbt_tmp"
  
    
    as (
      -- Purchase days (days with positive purchase revenue; same-day orders merged, as the BTYD models
-- require) with the gap to the previous one and the customer's first purchase day.
-- A gap belongs to the history of every cutoff on or after its day.
with orders as (
    select * from "accuracy-online-retail"."main"."int_orders"
),

daily as (
    select
        customer_id,
        order_date as purchase_date,
        sum(purchase_value) as purchase_revenue
    from orders
    group by 1, 2
    having sum(purchase_value) > 0
),

ordered as (
    select
        customer_id,
        purchase_date,
        purchase_revenue,
        lag(purchase_date) over (partition by customer_id order by purchase_date) as previous_purchase_date,
        min(purchase_date) over (partition by customer_id) as first_purchase_date
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
        then 
        (date_diff('day', previous_purchase_date::timestamp, purchase_date::timestamp ))
    
    end as days_since_previous_purchase
from ordered
    );
    
  