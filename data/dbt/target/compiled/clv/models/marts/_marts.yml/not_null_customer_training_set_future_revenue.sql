
    
    



select future_revenue
from "accuracy-synthetic"."main"."customer_training_set"
where future_revenue is null


