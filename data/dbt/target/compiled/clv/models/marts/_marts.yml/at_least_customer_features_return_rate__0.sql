
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select return_rate
from "accuracy-synthetic"."main"."customer_features"
where return_rate < 0
