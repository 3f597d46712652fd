
    
    



select customer_id
from "accuracy-online-retail"."main"."customer_labels"
where customer_id is null


