"""Warehouse access: the dlt destination (DuckDB or BigQuery), a pipeline whose state lives in the
warehouse, and the single-writer turn that keeps overlapping runs from storing an event or sending
an alert twice.

DuckDB: a ``flock`` on a lock file beside the database, which exists only while a run holds it, then
a bounded wait for other processes to close the file. BigQuery: a lease row in the dataset.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseException

from .config import ConfigError, Settings
from .duckdb_file import wait_until_free
from .scratch import scratch_dir
from .sql import sql_string

PIPELINE_NAME = "mixpanel_alerts"
logger = logging.getLogger("mixpanel_alerts")


def destination(settings: Settings, spill_dir: Path | None = None) -> Any:
    """The dlt destination. On DuckDB, ``spill_dir`` takes the files a query spills past its memory
    limit: DuckDB's default, a folder beside the database, keeps them for ever after a kill."""
    if settings.warehouse == "bigquery":
        return dlt.destinations.bigquery(location=settings.location, project_id=settings.gcp_project_id)
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    global_config = {
        # large batches load without ordering work
        "preserve_insertion_order": False,
        # zstd for the rows this connection writes: the JSON `properties` column takes about half
        # the space and half the time of DuckDB's default choice (which analyses every row group)
        "force_compression": "zstd",
        # the insert streams from the spool; past this DuckDB spills to disk (the peak RSS halves)
        "memory_limit": "1GB",
    }
    if spill_dir is not None:
        global_config["temp_directory"] = str(spill_dir)
    return dlt.destinations.duckdb(DuckDbCredentials(str(settings.duckdb_path), global_config=global_config))


@contextlib.contextmanager
def pipeline_for(settings: Settings) -> Iterator[dlt.Pipeline]:
    """A pipeline in a fresh working folder; its state is restored from the destination."""
    with scratch_dir("pipeline") as working_dir:
        yield dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            pipelines_dir=str(working_dir),
            destination=destination(settings, working_dir / "spill"),
            dataset_name=settings.dataset,
        )


# the writers this process holds, per warehouse target: single_writer is reentrant
_writers_held: dict[str, int] = {}


@contextlib.contextmanager
def single_writer(settings: Settings) -> Iterator[None]:
    """One writer at a time per warehouse target (collect, the dbt build and the alert step):
    overlapping runs could store an event twice or send an alert twice. A later run waits.

    DuckDB: a lock on a file beside the database (the system releases it if the process dies).
    BigQuery: a lease row in the dataset (see ``_bigquery_lease``)."""
    if settings.warehouse == "bigquery":
        key = f"bigquery:{settings.gcp_project_id}.{settings.dataset}"
    else:
        key = f"duckdb:{settings.duckdb_path.resolve()}"
    if _writers_held.get(key):
        _writers_held[key] += 1
        try:
            yield
        finally:
            _writers_held[key] -= 1
        return
    lock = _bigquery_lease(settings) if settings.warehouse == "bigquery" else _duckdb_file_lock(settings)
    with lock:
        _writers_held[key] = 1
        try:
            yield
        finally:
            del _writers_held[key]


@contextlib.contextmanager
def _duckdb_file_lock(settings: Settings) -> Iterator[None]:
    """A ``flock`` on a lock file beside the database (``.NAME.lock``), which exists only while a
    run holds it; then a bounded wait for other processes to close the database file.

    Not a lock on the database file itself: closing any descriptor of a file drops every ``fcntl``
    lock the process holds on it, DuckDB's included, so a lock there would, once let go, leave
    DuckDB's own lock gone while a connection in this process could still write."""
    path = settings.duckdb_path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    handle = _take_lock_file(lock_path)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        wait_until_free(path, settings.duckdb_busy_timeout_seconds)
        # no other process has the file open: what is beside it is left over (the lock file of
        # earlier versions, and spill files of a process killed while DuckDB's default held them)
        path.with_name(path.name + ".collect.lock").unlink(missing_ok=True)
        shutil.rmtree(path.with_name(path.name + ".tmp"), ignore_errors=True)
        yield
    finally:
        # removed while still held: a run waiting on this file sees it is gone and takes a new one
        lock_path.unlink(missing_ok=True)
        os.close(handle)


def _take_lock_file(lock_path: Path) -> int:
    """The descriptor of ``lock_path``, exclusively locked; waits for the run that holds it."""
    warned = False
    while True:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not warned:
                holder = os.pread(handle, 200, 0).decode(errors="replace").strip() or "another run"
                logger.warning("another run (%s) is writing to %s: waiting for it", holder, lock_path.parent)
                warned = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.fstat(handle).st_ino == os.stat(lock_path).st_ino:
                return handle
        except FileNotFoundError:
            pass
        os.close(handle)  # the holder removed that file as it let go: lock the one there now


def warehouse_ready(settings: Settings) -> None:
    """Before a step opens the warehouse: on DuckDB, wait (bounded) for other processes to close the
    file; a ``DuckDBFileBusyError`` names the holder."""
    if settings.warehouse == "duckdb":
        wait_until_free(settings.duckdb_path, settings.duckdb_busy_timeout_seconds)


LEASE_TABLE = "_mixpanel_alerts_lease"
LEASE_SECONDS = 5 * 60  # a run that dies holds the lease at most this long
LEASE_RENEW_SECONDS = 60.0  # the holder extends it this often while it works
LEASE_POLL_SECONDS = 5.0
LEASE_MAX_FAILURES = 5  # failed attempts on a free lease before the error is raised
# One permanent row. Taking and renewing it are UPDATEs: BigQuery runs UPDATEs on one table one at a
# time (a conflicting one fails), so two runs cannot both take it; inserts would not conflict.
_CREATE_LEASE = (
    "create table if not exists {table} as select 'run' as name, cast(null as string) as owner, "
    "timestamp '1970-01-01 00:00:00+00' as expires_at"
)
_FREE_ROW = "insert into {table} (name, owner, expires_at) values ('run', null, timestamp '1970-01-01 00:00:00+00')"
_TAKE_LEASE = (
    "update {table} set owner = %s, expires_at = timestamp_add(current_timestamp(), interval {seconds} second) "
    "where name = 'run' and (owner is null or expires_at < current_timestamp())"
)
_RENEW_LEASE = (
    "update {table} set expires_at = timestamp_add(current_timestamp(), interval {seconds} second) "
    "where name = 'run' and owner = @owner"
)
_GIVE_BACK_LEASE = (
    "update {table} set owner = null, expires_at = timestamp '1970-01-01 00:00:00+00' where name = 'run' and owner = %s"
)


@contextlib.contextmanager
def _bigquery_lease(settings: Settings) -> Iterator[None]:
    """The lease row in ``_mixpanel_alerts_lease``: taken with an ``UPDATE`` that only succeeds on a
    free or lapsed lease, renewed every minute by a thread while the run works, given back at the
    end. A run that dies stops renewing, and the lease lapses after ``LEASE_SECONDS``."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        if not client.has_dataset():
            client.create_dataset()
        table = client.make_qualified_table_name(LEASE_TABLE)
        with contextlib.suppress(DatabaseException):  # another run created it at the same moment
            client.execute_sql(_CREATE_LEASE.format(table=table))
        _take_lease(client, table, owner, settings.dataset)
        stop = threading.Event()
        renewer = threading.Thread(
            target=_renew_lease, args=(client.native_connection, table, owner, stop), name="lease", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                client.execute_sql(_GIVE_BACK_LEASE.format(table=table), owner)
            except Exception:  # the run's own outcome matters more; the lease lapses anyway
                logger.warning("could not give back the lease on %s; it lapses within %s s", table, LEASE_SECONDS)


def _take_lease(client: Any, table: str, owner: str, dataset: str) -> None:
    take = _TAKE_LEASE.format(table=table, seconds=LEASE_SECONDS)
    failures: list[Exception] = []
    waiting = False
    while True:
        try:
            client.execute_sql(take, owner)
        except DatabaseException as exc:  # another run's statement on the lease won, or a real error
            failures.append(exc)
        holders = client.execute_sql(f"select owner, expires_at from {table} where name = 'run'") or []
        if not holders:  # the row was deleted: put a free one back
            client.execute_sql(_FREE_ROW.format(table=table))
            continue
        if all(holder == owner for holder, _ in holders):
            return
        others = [(holder, until) for holder, until in holders if holder not in (None, owner)]
        if others:
            failures.clear()  # waiting for a holder is not a failure
            if not waiting:
                logger.warning("another run (%s) holds the lease on %s until %s: waiting for it", *others[0], dataset)
                waiting = True
        elif len(failures) >= LEASE_MAX_FAILURES:
            raise failures[-1]
        time.sleep(LEASE_POLL_SECONDS)


def _renew_lease(bigquery: Any, table: str, owner: str, stop: threading.Event) -> None:
    """Extend the lease every LEASE_RENEW_SECONDS until ``stop``; the google client is thread-safe."""
    from google.cloud.bigquery import QueryJobConfig, ScalarQueryParameter

    renew = _RENEW_LEASE.format(table=table, seconds=LEASE_SECONDS)
    config = QueryJobConfig(query_parameters=[ScalarQueryParameter("owner", "STRING", owner)])
    while not stop.wait(LEASE_RENEW_SECONDS):
        try:
            bigquery.query(renew, job_config=config).result()
        except Exception as exc:
            logger.warning("could not renew the lease on %s (%s); retrying in %.0f s", table, exc, LEASE_RENEW_SECONDS)


def columns_of(client: Any, table: str) -> list[str]:
    """The columns of ``table`` (a qualified name), read through a dlt SQL client without reading a row."""
    with client.execute_query(f"select * from {table} where 1 = 0") as cursor:
        return [str(column[0]) for column in cursor.description or []]


def undefined_relation_errors() -> tuple[type[Exception], ...]:
    """What dlt's SQL client raises for a table that does not exist (yet), on either warehouse
    (BigQuery's ``NotFound`` escapes dlt's translation while rows are fetched)."""
    from dlt.common.destination.exceptions import DestinationUndefinedEntity
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    errors: tuple[type[Exception], ...] = (DatabaseUndefinedRelation, DestinationUndefinedEntity)
    try:
        from google.api_core.exceptions import NotFound
    except ImportError:  # without the bigquery extra
        return errors
    return (*errors, NotFound)


def query_duckdb(settings: Settings, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a read-only query on the DuckDB file; the caller holds a run's turn (it waits for a
    running one, and a run waits for it): a notebook holding the file would block runs; this lets go
    at once."""
    import duckdb

    require_duckdb_file(settings, "query")
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        cursor = con.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        return columns, cursor.fetchall()


def snapshot_duckdb(settings: Settings, target: Path) -> int:
    """Copy the whole DuckDB warehouse to ``target``, consistently (in a run's turn); return its
    size in bytes; the caller holds a run's turn. A notebook may keep the copy open as long as it
    likes: runs never see it."""
    import duckdb

    require_duckdb_file(settings, "snapshot")
    target = target.expanduser().resolve()
    if target == settings.duckdb_path.resolve():
        raise ConfigError("the snapshot must be another file than DUCKDB_PATH")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source, copy = (sql_string(str(path)) for path in (settings.duckdb_path, partial))
    try:
        with duckdb.connect() as con:
            con.execute(f"attach {source} as warehouse (read_only); attach {copy} as snapshot")
            con.execute("copy from database warehouse to snapshot")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target.stat().st_size


def require_duckdb_file(settings: Settings, command: str) -> None:
    if settings.warehouse != "duckdb":
        raise ConfigError(f"{command} reads the DuckDB file (WAREHOUSE=duckdb); on BigQuery, use the dataset directly")
    if not settings.duckdb_path.exists():
        raise ConfigError(f"DUCKDB_PATH={settings.duckdb_path} does not exist yet: run `mixpanel-alerts collect` first")
