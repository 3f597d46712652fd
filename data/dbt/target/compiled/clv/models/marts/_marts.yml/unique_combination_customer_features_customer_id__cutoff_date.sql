
-- Key combinations that occur more than once.
select customer_id, cutoff_date, count(*) as occurrences
from "accuracy-online-retail"."main"."customer_features"
group by customer_id, cutoff_date
having count(*) > 1
