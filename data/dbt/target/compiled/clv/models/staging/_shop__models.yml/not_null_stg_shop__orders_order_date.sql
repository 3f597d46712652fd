
    
    



select order_date
from "accuracy-online-retail"."main"."stg_shop__orders"
where order_date is null


