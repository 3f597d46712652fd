
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select orders_count_30d
from "accuracy-online-retail"."main"."customer_features"
where orders_count_30d < 0
