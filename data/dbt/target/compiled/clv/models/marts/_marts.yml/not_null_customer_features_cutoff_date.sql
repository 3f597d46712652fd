
    
    



select cutoff_date
from "accuracy-online-retail"."main"."customer_features"
where cutoff_date is null


