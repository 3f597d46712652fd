
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select future_orders_count
from "accuracy-online-retail"."main"."customer_labels"
where future_orders_count < 0
