"""dbt's run flags as sqlfluff's jinja templater sees them (a normal incremental run)."""

FULL_REFRESH = False
INTROSPECT = False
