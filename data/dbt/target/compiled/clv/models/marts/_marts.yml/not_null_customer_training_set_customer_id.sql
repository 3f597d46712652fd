
    
    



select customer_id
from "accuracy-online-retail"."main"."customer_training_set"
where customer_id is null


