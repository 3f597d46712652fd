
    
    



select future_revenue
from "accuracy-online-retail"."main"."customer_training_set"
where future_revenue is null


