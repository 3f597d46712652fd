
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select distinct_products_365d
from "accuracy-online-retail"."main"."customer_features"
where distinct_products_365d < 0

  
  
      
    ) dbt_internal_test