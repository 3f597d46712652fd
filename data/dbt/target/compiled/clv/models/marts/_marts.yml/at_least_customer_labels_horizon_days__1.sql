
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select horizon_days
from "accuracy-online-retail"."main"."customer_labels"
where horizon_days < 1
