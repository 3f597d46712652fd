
    
    



select customer_id
from "accuracy-synthetic"."main"."stg_shop__orders"
where customer_id is null


