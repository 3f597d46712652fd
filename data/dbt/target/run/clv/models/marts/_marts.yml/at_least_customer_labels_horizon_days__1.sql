
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select horizon_days
from "accuracy-online-retail"."main"."customer_labels"
where horizon_days < 1

  
  
      
    ) dbt_internal_test