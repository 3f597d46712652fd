
    
    



select cutoff_date
from "accuracy-online-retail"."main"."int_order_value_caps"
where cutoff_date is null


