"""Stand-in for dbt's ``adapter.dispatch``, for sqlfluff's jinja templater only (see dbt.py).

Renders the DuckDB variants of this project's dispatched macros.
"""

from collections.abc import Callable


def _minute_spine(start_minute: str, end_minute: str) -> str:
    return f"select unnest(generate_series({start_minute}, {end_minute}, interval 1 minute)) as minute_at"


def _minute_of(timestamp_expression: str) -> str:
    return f"date_trunc('minute', {timestamp_expression})"


def _add_minutes(timestamp_expression: str, minutes: object) -> str:
    return f"({timestamp_expression} + to_minutes(cast({minutes} as bigint)))"


def _minutes_between(earlier: str, later: str) -> str:
    return f"date_diff('minute', {earlier}, {later})"


_MACROS: dict[str, Callable[..., str]] = {
    "minute_spine": _minute_spine,
    "minute_of": _minute_of,
    "add_minutes": _add_minutes,
    "minutes_between": _minutes_between,
}


def dispatch(macro_name: str, macro_namespace: str | None = None) -> Callable[..., str]:
    return _MACROS[macro_name]
