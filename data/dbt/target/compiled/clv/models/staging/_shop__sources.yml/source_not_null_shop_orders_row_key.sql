
    
    



select row_key
from "accuracy-synthetic"."raw"."orders"
where row_key is null


