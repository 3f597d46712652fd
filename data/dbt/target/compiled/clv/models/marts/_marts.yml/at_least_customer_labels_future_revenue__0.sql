
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select future_revenue
from "accuracy-online-retail"."main"."customer_labels"
where future_revenue < 0
