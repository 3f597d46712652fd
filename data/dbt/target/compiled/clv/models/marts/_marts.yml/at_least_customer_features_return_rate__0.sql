
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select return_rate
from "accuracy-online-retail"."main"."customer_features"
where return_rate < 0
