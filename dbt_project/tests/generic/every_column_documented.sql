{% test every_column_documented(model, also_documented_in=[]) %}
-- One row per column the table has but its YAML does not document: a new column needs its description
-- (and, for a model input, its meta) before the build passes. `also_documented_in`: models whose column
-- docs count too (a table that passes another's columns through).
{%- set documented = [] -%}
{%- set undocumented = [] -%}
{#- a compile without introspection (--no-introspect) cannot list columns -#}
{%- if execute and flags.INTROSPECT is not false -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and (node.alias == model.identifier or node.name in also_documented_in) -%}
        {%- for name in node.columns -%}{%- do documented.append(name | lower) -%}{%- endfor -%}
    {%- endfor -%}
    {%- for column in adapter.get_columns_in_relation(model) -%}
        {%- if column.name | lower not in documented -%}{%- do undocumented.append(column.name | lower) -%}{%- endif -%}
    {%- endfor -%}
{%- endif %}
select column_name
from (
    select cast(null as {{ dbt.type_string() }}) as column_name
    {%- for name in undocumented %}
    union all select '{{ name }}'
    {%- endfor %}
) as columns_without_docs
where column_name is not null
{% endtest %}
