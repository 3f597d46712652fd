
    
    



select cutoff_date
from "accuracy-synthetic"."main"."int_order_value_caps"
where cutoff_date is null


