
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select order_days_count
from "accuracy-online-retail"."main"."customer_features"
where order_days_count < 1
