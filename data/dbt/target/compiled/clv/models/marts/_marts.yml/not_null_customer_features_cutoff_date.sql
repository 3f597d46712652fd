
    
    



select cutoff_date
from "accuracy-synthetic"."main"."customer_features"
where cutoff_date is null


