"""Stand-in for dbt's ``adapter.dispatch``, for sqlfluff's jinja templater only (see dbt.py)."""

from collections.abc import Callable


def _minute_spine(start_minute: str, end_minute: str) -> str:
    return f"select unnest(generate_series({start_minute}, {end_minute}, interval 1 minute)) as minute_at"


_MACROS: dict[str, Callable[..., str]] = {"minute_spine": _minute_spine}


def dispatch(macro_name: str, macro_namespace: str | None = None) -> Callable[..., str]:
    return _MACROS[macro_name]
