
    
    



select rows_affected
from "accuracy-online-retail"."main"."cleaning_summary"
where rows_affected is null


