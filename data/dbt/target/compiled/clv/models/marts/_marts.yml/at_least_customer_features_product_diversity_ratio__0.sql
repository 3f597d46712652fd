
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select product_diversity_ratio
from "accuracy-online-retail"."main"."customer_features"
where product_diversity_ratio < 0
