
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select add_to_cart_count_90d
from "accuracy-online-retail"."main"."customer_features"
where add_to_cart_count_90d < 0
