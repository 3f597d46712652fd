
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select mean_days_between_orders
from "accuracy-online-retail"."main"."customer_features"
where mean_days_between_orders < 0
