
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select btyd_t
from "accuracy-online-retail"."main"."customer_features"
where btyd_t < 0
