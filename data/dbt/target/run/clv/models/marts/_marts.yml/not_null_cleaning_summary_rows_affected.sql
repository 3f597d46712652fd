
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    



select rows_affected
from "accuracy-online-retail"."main"."cleaning_summary"
where rows_affected is null



  
  
      
    ) dbt_internal_test