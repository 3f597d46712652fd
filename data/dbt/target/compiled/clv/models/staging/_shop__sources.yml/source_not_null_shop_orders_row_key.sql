
    
    



select row_key
from "accuracy-online-retail"."raw"."orders"
where row_key is null


