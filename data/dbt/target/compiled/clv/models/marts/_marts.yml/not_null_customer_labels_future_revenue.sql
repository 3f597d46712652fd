
    
    



select future_revenue
from "accuracy-online-retail"."main"."customer_labels"
where future_revenue is null


