
    
    



select customer_id
from "accuracy-synthetic"."main"."customer_training_set"
where customer_id is null


