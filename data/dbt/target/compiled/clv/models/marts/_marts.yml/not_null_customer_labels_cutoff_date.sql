
    
    



select cutoff_date
from "accuracy-synthetic"."main"."customer_labels"
where cutoff_date is null


