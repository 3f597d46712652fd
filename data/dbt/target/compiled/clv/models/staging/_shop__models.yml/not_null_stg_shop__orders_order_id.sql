
    
    



select order_id
from "accuracy-synthetic"."main"."stg_shop__orders"
where order_id is null


