
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select row_key
from "accuracy-online-retail"."raw"."orders"
where row_key is null



  
  
      
    ) dbt_internal_test