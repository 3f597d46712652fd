
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select cutoff_date
from "accuracy-online-retail"."main"."customer_features"
where cutoff_date is null



  
  
      
    ) dbt_internal_test