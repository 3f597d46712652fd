
    
    



select cutoff_date
from "accuracy-synthetic"."main"."customer_training_set"
where cutoff_date is null


