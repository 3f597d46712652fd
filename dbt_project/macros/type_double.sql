{#- A 64-bit float on DuckDB, PostgreSQL and Redshift alike (dbt.type_float() is DuckDB's 32-bit FLOAT). -#}
{% macro type_double() %}float8{% endmacro %}
