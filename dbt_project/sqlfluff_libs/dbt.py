"""Stand-ins for dbt's cross-database macros, for sqlfluff's jinja templater only.

sqlfluff lints the models with the jinja templater (the dbt templater would need a compiled
project, and the alert-rules seed is generated at run time). These render DuckDB SQL with the
same shape as dbt-duckdb's macros; dbt itself never imports this file.
"""


def type_timestamp() -> str:
    return "timestamp"


def type_string() -> str:
    return "varchar"


def current_timestamp() -> str:
    return "current_timestamp"


def date_trunc(datepart: str, date: str) -> str:
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart: str, interval: object, from_date_or_timestamp: str) -> str:
    return f"date_add({from_date_or_timestamp}, interval ({interval}) {datepart})"


def datediff(first_date: str, second_date: str, datepart: str) -> str:
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def hash(field: str) -> str:
    return f"md5(cast({field} as varchar))"


def concat(fields: list[str]) -> str:
    return " || ".join(fields)


def cast(field: str, type_: str) -> str:
    return f"cast({field} as {type_})"
