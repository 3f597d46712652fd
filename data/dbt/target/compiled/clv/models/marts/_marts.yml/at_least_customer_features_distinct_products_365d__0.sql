
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select distinct_products_365d
from "accuracy-online-retail"."main"."customer_features"
where distinct_products_365d < 0
