
    
    



select customer_id
from "accuracy-synthetic"."main"."customer_features"
where customer_id is null


