
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select rule
from "accuracy-online-retail"."main"."cleaning_summary"
where rule is null



  
  
      
    ) dbt_internal_test