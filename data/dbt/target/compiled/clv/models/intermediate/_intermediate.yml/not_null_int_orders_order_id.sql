
    
    



select order_id
from "accuracy-synthetic"."main"."int_orders"
where order_id is null


