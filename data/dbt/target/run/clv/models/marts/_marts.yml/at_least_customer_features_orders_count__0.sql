
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select orders_count
from "accuracy-online-retail"."main"."customer_features"
where orders_count < 0

  
  
      
    ) dbt_internal_test