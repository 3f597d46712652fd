
    
    



select cutoff_date
from "accuracy-online-retail"."main"."int_cutoffs"
where cutoff_date is null


