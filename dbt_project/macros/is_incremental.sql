{#- dbt's is_incremental() asks the warehouse whether the table exists. Compiling without a connection
    (`dbt compile --no-introspect`, as the Redshift SQL check in the tests does) compiles the full build
    instead of failing; with a connection this is dbt's own macro. -#}
{% macro is_incremental() %}
    {% if flags.INTROSPECT is false %}
        {{ return(false) }}
    {% endif %}
    {{ return(dbt.is_incremental()) }}
{% endmacro %}
