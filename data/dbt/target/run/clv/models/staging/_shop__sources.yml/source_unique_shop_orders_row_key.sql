
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    row_key as unique_field,
    count(*) as n_records

from "accuracy-online-retail"."raw"."orders"
where row_key is not null
group by row_key
having count(*) > 1



  
  
      
    ) dbt_internal_test