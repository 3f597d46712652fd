
    
    



select order_id
from "accuracy-online-retail"."main"."int_orders"
where order_id is null


