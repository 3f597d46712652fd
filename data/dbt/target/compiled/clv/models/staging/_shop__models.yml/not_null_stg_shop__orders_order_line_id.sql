
    
    



select order_line_id
from "accuracy-online-retail"."main"."stg_shop__orders"
where order_line_id is null


