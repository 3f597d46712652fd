
    
    



select cutoff_date
from "accuracy-online-retail"."main"."customer_labels"
where cutoff_date is null


