
    
    



select order_line_id
from "accuracy-synthetic"."main"."stg_shop__orders"
where order_line_id is null


