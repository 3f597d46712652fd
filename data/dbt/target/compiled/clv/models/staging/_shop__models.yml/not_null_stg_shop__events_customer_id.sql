
    
    



select customer_id
from "accuracy-synthetic"."main"."stg_shop__events"
where customer_id is null


