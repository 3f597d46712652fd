
    
    



select customer_id
from "accuracy-synthetic"."main"."stg_shop__customers"
where customer_id is null


