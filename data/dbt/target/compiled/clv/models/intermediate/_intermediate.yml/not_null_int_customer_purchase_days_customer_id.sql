
    
    



select customer_id
from "accuracy-online-retail"."main"."int_customer_purchase_days"
where customer_id is null


