
    
    



select rule
from "accuracy-synthetic"."main"."cleaning_summary"
where rule is null


