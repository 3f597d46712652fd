
    
    



select customer_id
from "accuracy-online-retail"."main"."customer_features"
where customer_id is null


