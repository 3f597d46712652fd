
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select future_revenue
from "accuracy-online-retail"."main"."customer_training_set"
where future_revenue is null



  
  
      
    ) dbt_internal_test