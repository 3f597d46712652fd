
    
    



select customer_id
from "accuracy-online-retail"."main"."stg_shop__events"
where customer_id is null


