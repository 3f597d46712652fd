
    
    



select rule
from "accuracy-online-retail"."main"."cleaning_summary"
where rule is null


