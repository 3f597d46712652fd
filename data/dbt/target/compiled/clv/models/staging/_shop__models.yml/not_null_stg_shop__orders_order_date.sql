
    
    



select order_date
from "accuracy-synthetic"."main"."stg_shop__orders"
where order_date is null


