
    
    



select cutoff_date
from "accuracy-synthetic"."main"."int_cutoffs"
where cutoff_date is null


