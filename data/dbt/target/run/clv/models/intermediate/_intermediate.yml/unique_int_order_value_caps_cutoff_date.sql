
    
    select
      count(*) as failures,
      count(*) != 0 as should_warn,
      count(*) != 0 as should_error
    from (
      
    
  
    
    

select
    cutoff_date as unique_field,
    count(*) as n_records

from "accuracy-online-retail"."main"."int_order_value_caps"
where cutoff_date is not null
group by cutoff_date
having count(*) > 1



  
  
      
    ) dbt_internal_test