
    

    create  table
      "accuracy-online-retail"."main"."int_order_value_caps__dbt_tmp"
  
    
    as (
      -- Cleaning rule: extreme order values are capped, never dropped. The cap for a cutoff is the
-- `order_value_cap_percentile` (default 0.999) of purchase order values on or before that cutoff, so it
-- uses no data from after the cutoff. Null percentile (or >= 1) disables the cap.


with cutoffs as (
    select * from "accuracy-online-retail"."main"."int_cutoffs"
),

orders as (
    select * from "accuracy-online-retail"."main"."int_orders"
    where purchase_value > 0
),

caps as (
    select
        cutoffs.cutoff_date,
        
        percentile_cont(0.999) within group (order by orders.purchase_value)
         as order_value_cap
    from cutoffs
    left join orders on orders.order_date <= cutoffs.cutoff_date
    group by 1
)

select * from caps
    );
    
  