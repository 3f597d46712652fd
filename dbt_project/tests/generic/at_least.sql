{% test at_least(model, column_name, min_value) %}
-- Rows whose value is below min_value (NULLs pass: use not_null for those).
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }}
{% endtest %}
