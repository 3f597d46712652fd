
    
    



select rows_affected
from "accuracy-synthetic"."main"."cleaning_summary"
where rows_affected is null


