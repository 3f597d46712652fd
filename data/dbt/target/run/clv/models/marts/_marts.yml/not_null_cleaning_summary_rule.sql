
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select rule
from "accuracy-synthetic"."main"."cleaning_summary"
where rule is null



  
  
      
    ) dbt_internal_test