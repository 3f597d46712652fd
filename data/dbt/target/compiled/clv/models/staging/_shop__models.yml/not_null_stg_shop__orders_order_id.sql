
    
    



select order_id
from "accuracy-online-retail"."main"."stg_shop__orders"
where order_id is null


