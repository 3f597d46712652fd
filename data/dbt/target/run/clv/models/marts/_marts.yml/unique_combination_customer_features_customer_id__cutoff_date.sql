
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
-- Key combinations that occur more than once.
select customer_id, cutoff_date, count(*) as occurrences
from "accuracy-online-retail"."main"."customer_features"
group by customer_id, cutoff_date
having count(*) > 1

  
  
      
    ) dbt_internal_test