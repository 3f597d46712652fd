
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select session_duration_s_mean_30d
from "accuracy-online-retail"."main"."customer_features"
where session_duration_s_mean_30d < 0
