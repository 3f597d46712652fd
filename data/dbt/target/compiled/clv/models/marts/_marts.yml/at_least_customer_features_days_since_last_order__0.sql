
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select days_since_last_order
from "accuracy-online-retail"."main"."customer_features"
where days_since_last_order < 0
