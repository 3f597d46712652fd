{#- dbt's hook for a test's `where` config, with one placeholder: `__cutoffs_built_this_run__` becomes the
    cutoffs this build computed (int_cutoffs.to_build). The tests of the kept snapshot tables use it
    (`where: cutoff_date in __cutoffs_built_this_run__`, marts/_marts.yml): snapshots kept from earlier
    builds were tested when they were built and do not change, so a week's tests read that week's rows,
    not every snapshot kept. A full refresh builds, and so tests, every cutoff. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__cutoffs_built_this_run__' in where -%}
        {%- set cutoffs = api.Relation.create(database=relation.database, schema=relation.schema,
                                              identifier='int_cutoffs') -%}
        {%- set where = where | replace('__cutoffs_built_this_run__',
                                        '(select cutoff_date from ' ~ cutoffs ~ ' where to_build)') -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
