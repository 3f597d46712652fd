
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select std_days_between_orders
from "accuracy-online-retail"."main"."customer_features"
where std_days_between_orders < 0

  
  
      
    ) dbt_internal_test