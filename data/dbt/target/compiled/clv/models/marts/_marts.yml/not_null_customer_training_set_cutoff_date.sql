
    
    



select cutoff_date
from "accuracy-online-retail"."main"."customer_training_set"
where cutoff_date is null


