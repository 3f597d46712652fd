
    
    



select future_revenue
from "accuracy-synthetic"."main"."customer_labels"
where future_revenue is null


