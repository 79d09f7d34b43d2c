"""The tool's own small state tables in the warehouse (the alert ledger, silences, run history).

A cron job or a cloud function keeps nothing between runs, so this state lives beside the data,
read and written through the pipeline's dlt SQL client on DuckDB and BigQuery alike. A table
written by an earlier version (fewer columns) gains the new ones, and reads as null there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# column -> (duckdb type, bigquery type)
Columns = Mapping[str, tuple[str, str]]


class StateTable:
    def __init__(self, client: Any, warehouse: str, name: str, columns: Columns) -> None:
        self.client = client
        self.name = name
        self.table = client.make_qualified_table_name(name)
        self.columns = columns
        self.type_index = 1 if warehouse == "bigquery" else 0
        self._present: set[str] | None = None  # the columns, once ensure() has made them

    def ensure(self) -> None:
        """Create the table, or add the columns an earlier version did not have."""
        if not self.client.has_dataset():
            self.client.create_dataset()
        columns = ", ".join(f"{name} {types[self.type_index]}" for name, types in self.columns.items())
        self.client.execute_sql(f"create table if not exists {self.table} ({columns})")
        present = self.present() or set()
        for name, types in self.columns.items():
            if name not in present:
                self.client.execute_sql(f"alter table {self.table} add column {name} {types[self.type_index]}")
        self._zone_timestamps()
        self._present = set(self.columns)

    def _zone_timestamps(self) -> None:
        """DuckDB: a ``timestamp`` column of an earlier version (UTC without its zone) becomes a
        ``timestamptz``, its values read as UTC, like every other moment the tool stores."""
        if self.type_index != 0:
            return
        wanted = {name for name, types in self.columns.items() if types[0] == "timestamptz"}
        rows = self.client.execute_sql(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
            "and data_type = 'TIMESTAMP'",
            self.client.dataset_name,
            self.name,
        )
        for (name,) in rows or []:
            if name in wanted:
                self.client.execute_sql(
                    f"alter table {self.table} alter column {name} set data type timestamptz "
                    f"using timezone('UTC', {name})"
                )

    def present(self) -> set[str] | None:
        """The table's columns; None when it does not exist (yet)."""
        if self._present is not None:
            return self._present
        from .warehouse import undefined_relation_errors

        try:
            with self.client.execute_query(f"select * from {self.table} limit 0") as cursor:
                return {str(column[0]) for column in cursor.description or []}
        except undefined_relation_errors():
            return None

    def rows(
        self, where: str = "", *parameters: Any, order_by: str = "", limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The rows (``where``: a condition with ``%s`` parameters; the first ``limit`` in ``order_by``);
        none when the table does not exist."""
        present = self.present()
        if present is None:
            return []
        names = ", ".join(name if name in present else f"null as {name}" for name in self.columns)
        sql = f"select {names} from {self.table}"
        if where:
            sql += f" where {where}"
        if order_by:
            sql += f" order by {order_by}"
        if limit is not None:
            sql += f" limit {int(limit)}"
        result = self.client.execute_sql(sql, *parameters) or []
        return [dict(zip(self.columns, row, strict=True)) for row in result]

    def insert(self, values: Mapping[str, Any]) -> None:
        ordered = [values.get(name) for name in self.columns]
        placeholders = ", ".join(_placeholder(value) for value in ordered)
        self.client.execute_sql(
            f"insert into {self.table} ({', '.join(self.columns)}) values ({placeholders})",
            *(value for value in ordered if value is not None),
        )

    def replace_all(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Every row replaced by ``rows``: one delete and one insert statement (two jobs on BigQuery)."""
        self.client.execute_sql(f"delete from {self.table} where true")
        if not rows:
            return
        tuples, parameters = [], []
        for row in rows:
            ordered = [row.get(name) for name in self.columns]
            tuples.append("(" + ", ".join(_placeholder(value) for value in ordered) + ")")
            parameters += [value for value in ordered if value is not None]
        self.client.execute_sql(
            f"insert into {self.table} ({', '.join(self.columns)}) values {', '.join(tuples)}", *parameters
        )

    def update(self, key: str, values: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """Set ``fields`` (default: every column but ``key``) of the row whose ``key`` column is ``values[key]``."""
        names = [name for name in (fields or self.columns) if name != key]
        assignments = ", ".join(f"{name} = {_placeholder(values.get(name))}" for name in names)
        parameters = [values.get(name) for name in names if values.get(name) is not None]
        self.client.execute_sql(f"update {self.table} set {assignments} where {key} = %s", *parameters, values[key])


def _placeholder(value: object) -> str:
    """BigQuery's DB-API cannot type a None parameter: nulls are written as literals."""
    return "null" if value is None else "%s"
