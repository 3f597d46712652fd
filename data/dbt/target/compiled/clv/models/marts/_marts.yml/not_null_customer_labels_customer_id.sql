
    
    



select customer_id
from "accuracy-synthetic"."main"."customer_labels"
where customer_id is null


