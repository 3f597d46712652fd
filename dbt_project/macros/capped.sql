{% macro capped(value, cap) %}
    case when {{ cap }} is not null and {{ value }} > {{ cap }} then {{ cap }} else {{ value }} end
{%- endmacro %}
