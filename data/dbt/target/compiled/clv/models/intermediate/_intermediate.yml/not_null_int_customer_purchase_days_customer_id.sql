
    
    



select customer_id
from "accuracy-synthetic"."main"."int_customer_purchase_days"
where customer_id is null


