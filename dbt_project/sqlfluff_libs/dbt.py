"""What sqlfluff's jinja templater sees for dbt's cross-database macros (`dbt.type_string()`, ...)."""


def type_string():
    return "varchar"


def type_timestamp():
    return "timestamp"


def current_timestamp():
    return "current_timestamp"


def type_float():
    return "double"


def datediff(first, second, datepart):
    return f"date_diff('{datepart}', {first}, {second})"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + interval ({interval}) {datepart})"


def is_incremental():
    return False
