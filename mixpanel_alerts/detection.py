"""Run the dbt detection models in-process, on the warehouse chosen by ``WAREHOUSE``.

The dbt project ships with the package, with its profile (``dbt_project/profiles.yml``, driven by the
product's environment variables). Each warehouse gets a working copy under the user's cache folder,
so runs against different warehouses never share dbt's state; the copy is refreshed only when the
shipped project changes, so dbt's partial parsing keeps working.

dbt parses once: nothing that changes from run to run reaches its parse. The moment a build runs as
of goes in as ``DETECTION_NOW``, which ``macros/detection_now.sql`` reads only while dbt executes;
the vars depend on the settings alone. A process keeps the manifests it parsed (``ManifestKey``:
the project's files, the adapter, the relation names, the vars), so its later dbt commands skip
dbt's parse altogether (tests, backtests).

The rules come from the validated events configuration (the one source of truth): before every dbt
command the CLI writes them into the warehouse's own ``alert_rules_config`` table, which the
``alert_rules`` model reads. A plain ``dbt build`` in ``dbt_project/`` therefore uses the rules the
CLI last wrote to that same warehouse, and refuses, saying why, where none were ever written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from .core import signals
from .core.config import Settings
from .core.events_config import CHANNEL_PATTERN, EventsConfig
from .core.state_table import StateTable
from .core.times import utc
from .core.warehouse import pipeline_for

PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")
# in a working copy: the digest of the shipped project it was copied from (what its files hold)
DIGEST_FILE = ".project-digest"
# the rules as the CLI writes them, in the raw table's dataset; the alert_rules model reads it
RULES_TABLE = "alert_rules_config"
RULES_COLUMNS = {
    "rule_id": ("varchar", "STRING"),
    "event_name": ("varchar", "STRING"),
    "enabled": ("boolean", "BOOL"),
    "alert_threshold": ("bigint", "INT64"),
    "alert_channel": ("varchar", "STRING"),
    "time_window_minutes": ("bigint", "INT64"),
    "cooldown_minutes": ("bigint", "INT64"),
    "description": ("varchar", "STRING"),
    "detector": ("varchar", "STRING"),
    "direction": ("varchar", "STRING"),
    "sensitivity": ("varchar", "STRING"),
    "min_events": ("bigint", "INT64"),
}
# Scans of all history (uniqueness of the raw table): for `dbt test` by analysts, not every run.
DETECT_EXCLUDE = ("source:*", "tag:full_history", "test_type:unit")
# the manifests this process parsed, the most recently used last (a few: each holds the whole project)
MANIFESTS_KEPT = 4
# in a working copy's target folder: its last parse, for the next process (see stored_manifest)
MANIFEST_FILE = "manifest.pickle"


class DetectionError(Exception):
    """dbt could not build the detection models; the message lists what failed."""


@dataclasses.dataclass(frozen=True)
class NodeCost:
    """What one dbt node of a build cost, as its adapter reported it: BigQuery reports the bytes
    its job processed and billed and the rows it wrote or returned; dbt-duckdb reports none of
    these (its response is "OK"), so on DuckDB only the time is known."""

    node: str
    status: str
    seconds: float
    rows_affected: int | None = None
    bytes_processed: int | None = None
    bytes_billed: int | None = None

    @classmethod
    def of(cls, node_result: Any) -> NodeCost:
        response = getattr(node_result, "adapter_response", None) or {}

        def whole(name: str) -> int | None:
            value = response.get(name)
            return None if value is None else int(value)

        return cls(
            node=str(getattr(node_result.node, "name", "?")),
            status=str(node_result.status),
            seconds=round(float(getattr(node_result, "execution_time", 0.0) or 0.0), 3),
            rows_affected=whole("rows_affected"),
            bytes_processed=whole("bytes_processed"),
            bytes_billed=whole("bytes_billed"),
        )


@dataclasses.dataclass
class DetectionResult:
    seconds: float
    nodes: int
    workdir: Path
    costs: list[NodeCost] = dataclasses.field(default_factory=list)

    def total(self, name: str) -> int | None:
        """The sum of a cost over the nodes that reported it; None when none did."""
        values = [getattr(cost, name) for cost in self.costs if getattr(cost, name) is not None]
        return sum(values) if values else None

    def describe_cost(self) -> str:
        """The run's total, for its summary line ("" when the adapter reported nothing)."""
        processed, billed, rows = (self.total(name) for name in ("bytes_processed", "bytes_billed", "rows_affected"))
        parts = []
        if processed is not None:
            parts.append(f"{_megabytes(processed)} processed, {_megabytes(billed or 0)} billed")
        if rows is not None:
            parts.append(f"{rows:,} rows written or read")
        return "; ".join(parts)

    def nodes_json(self) -> str:
        """Each node's cost, as pipeline_runs.dbt_nodes keeps it."""
        return json.dumps([dataclasses.asdict(cost) for cost in self.costs], separators=(",", ":"))


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.1f} MB"


def shipped_project_dir() -> Path:
    """The dbt project: inside the installed package, or beside it in a source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "dbt_project", package_dir.parent / "dbt_project"):
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise DetectionError(f"the dbt project is missing from the installation (looked beside {package_dir})")


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for name in PROJECT_FILES:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def warehouse_key(settings: Settings) -> str:
    if settings.warehouse == "bigquery":
        identity = f"bigquery:{settings.gcp_project_id}:{settings.dataset}"
    else:
        identity = f"duckdb:{settings.duckdb_path.resolve()}:{settings.dataset}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def prepare_workdir(settings: Settings, base: Path | None = None) -> Path:
    """A working copy of the dbt project and its profile for this warehouse."""
    source = shipped_project_dir()
    base = base or Path(platformdirs.user_cache_dir("mixpanel-alerts")) / "dbt"
    workdir = base / warehouse_key(settings)
    digest = _tree_digest(source)
    stamp = workdir / DIGEST_FILE
    if not stamp.is_file() or stamp.read_text() != digest:
        for name in PROJECT_FILES:
            target = workdir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (source / name).is_dir():
                shutil.copytree(source / name, target)
            elif (source / name).is_file():
                workdir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, target)
        stamp.write_text(digest)
    return workdir


def rule_rows(events_config: EventsConfig) -> list[dict[str, Any]]:
    """One row per rule of the configuration, as ``alert_rules_config`` holds it."""
    rows = []
    for rule in events_config.events:
        rows.append({
            "rule_id": rule.rule_id, "event_name": rule.name, "enabled": rule.enabled,
            "alert_threshold": rule.alert_threshold, "alert_channel": rule.alert_channel,
            "time_window_minutes": rule.time_window_minutes,
            "cooldown_minutes": rule.cooldown_minutes, "description": rule.description, "detector": rule.detector,
            "direction": rule.direction, "sensitivity": rule.sensitivity, "min_events": rule.min_events,
        })  # fmt: skip
    return rows


def write_rules(settings: Settings, events_config: EventsConfig) -> None:
    """The configuration's rules into the warehouse's ``alert_rules_config`` (parameters, not text:
    any name reads back exactly), rewritten only when they changed."""
    rows = rule_rows(events_config)
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as client:
        table = StateTable(client, settings.warehouse, RULES_TABLE, RULES_COLUMNS)
        if _comparable(table.rows()) == _comparable(rows):
            return
        table.ensure()
        table.replace_all(rows)


def _comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.get(name) for name in RULES_COLUMNS) for row in rows)


def dbt_environment(
    settings: Settings, detection_now: datetime | None = None, data_through: datetime | None = None
) -> dict[str, str]:
    """The variables the shipped profile and project read, from the settings (paths absolute), the
    moment the build runs as of (``DETECTION_NOW``, empty for now) and the newest data collected
    (``DETECTION_DATA_THROUGH``, empty when unknown: drops are judged up to it, see
    macros/drops_judged_before.sql)."""
    environment = {
        "WAREHOUSE": settings.warehouse,
        "DUCKDB_PATH": str(settings.duckdb_path.resolve()),
        "BIGQUERY_DATASET": settings.dataset,
        "BIGQUERY_TABLE": settings.table,
        "BIGQUERY_LOCATION": settings.location,
        "MIXPANEL_LATE_ARRIVAL_DAYS": str(settings.late_arrival_days),
        "DETECTION_NOW": utc(detection_now).strftime("%Y-%m-%d %H:%M:%S") if detection_now else "",
        "DETECTION_DATA_THROUGH": utc(data_through).strftime("%Y-%m-%d %H:%M:%S") if data_through else "",
    }
    if settings.gcp_project_id:
        environment["GCP_PROJECT_ID"] = settings.gcp_project_id
    return environment


@contextlib.contextmanager
def dbt_variables(
    settings: Settings, detection_now: datetime | None = None, data_through: datetime | None = None
) -> Iterator[None]:
    """The profile's variables in the process environment while dbt runs in it, then as they were."""
    environment = dbt_environment(settings, detection_now, data_through)
    before = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def detection_vars(settings: Settings) -> dict[str, Any]:
    """The dbt vars of every command the product runs: the settings' alone, so they change dbt's
    parse only when the settings do (the moment is ``DETECTION_NOW``, see ``dbt_environment``)."""
    return {
        "raw_schema": settings.dataset,
        "raw_table": settings.table,
        "slack_channel_pattern": CHANNEL_PATTERN.pattern,
        "detection_timezone": settings.detection_timezone,
    }


def dbt_arguments(workdir: Path) -> list[str]:
    return [
        "--project-dir", str(workdir),
        "--profiles-dir", str(workdir),
        "--target-path", str(workdir / "target"),
        "--log-path", str(workdir / "logs"),
    ]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ManifestKey:
    """What a parsed manifest of the shipped project depends on: its files, the adapter, the
    relation names it renders (``database``: the DuckDB file's stem, which names its catalog, or the
    GCP project; the dataset) and the vars. Not the moment (read only when dbt executes), nor the
    DuckDB file's folder (in the profile only, for the connection)."""

    project_digest: str
    target_type: str
    database: str
    dataset: str
    dbt_vars: str

    @classmethod
    def of(cls, settings: Settings, workdir: Path) -> ManifestKey:
        bigquery = settings.warehouse == "bigquery"
        return cls(
            project_digest=(workdir / DIGEST_FILE).read_text(),
            target_type=settings.warehouse,
            database=(settings.gcp_project_id or "") if bigquery else settings.duckdb_path.stem,
            dataset=settings.dataset,
            dbt_vars=json.dumps(detection_vars(settings), sort_keys=True),
        )


@dataclasses.dataclass
class ParsedManifest:
    manifest: Any
    # the env vars dbt's parse read, as it recorded them (a running build records more in the manifest)
    environment: dict[str, str]

    def still_valid(self) -> bool:
        """Whether the env vars the parse read have the values they had, as dbt's partial parsing
        checks them (unset then, and read with their default: still unset)."""
        from dbt.constants import DEFAULT_ENV_PLACEHOLDER

        for name, value in self.environment.items():
            current = os.environ.get(name)
            if current != (None if value == DEFAULT_ENV_PLACEHOLDER else value):
                return False
        return True


_manifests: OrderedDict[ManifestKey, ParsedManifest] = OrderedDict()


def keepable(manifest: Any, key: ManifestKey) -> bool:
    """Whether a manifest can serve later commands: every model is named in the key's database and
    dataset (a check on the key), none is ephemeral (dbt injects an ephemeral model's CTE into a
    node once, and would not again on a reused manifest) and there is no seed (it reads its CSV
    from the working copy it was parsed in)."""
    nodes = list(manifest.nodes.values())
    models = [node for node in nodes if str(node.resource_type) == "model"]
    return (
        bool(models)
        and all(node.database == key.database and node.schema == key.dataset for node in models)
        and not any(node.config.materialized == "ephemeral" for node in models)
        and not any(str(node.resource_type) == "seed" for node in nodes)
    )


def parsed_manifest(workdir: Path, settings: Settings) -> Any:
    """The project parsed for this warehouse's naming: kept from an earlier dbt command of this
    process, else parsed now (dbt's partial parsing, in the working copy) and kept."""
    from dbt.cli.main import dbtRunner

    key = ManifestKey.of(settings, workdir)
    kept = _manifests.get(key) or stored_manifest(workdir, key)
    if kept is not None and kept.still_valid():
        _manifests[key] = kept
        _manifests.move_to_end(key)
        return kept.manifest
    args = ["parse", "--vars", key.dbt_vars, "--quiet", "--no-write-json"]
    manifest = _checked(dbtRunner().invoke([*args, *dbt_arguments(workdir)]), "parse").result
    if keepable(manifest, key):
        parsed = ParsedManifest(manifest, dict(manifest.env_vars))
        _manifests[key] = parsed
        _manifests.move_to_end(key)
        while len(_manifests) > MANIFESTS_KEPT:
            _manifests.popitem(last=False)
        store_manifest(workdir, key, parsed)
    return manifest


def _manifest_stamp(key: ManifestKey) -> tuple[Any, ...]:
    """What a stored manifest must have been parsed for: the key and the versions of dbt and its
    adapters (a pickle holds their classes)."""
    from importlib.metadata import PackageNotFoundError, version

    versions: list[str | None] = []
    for package in ("dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-bigquery"):
        try:
            versions.append(version(package))
        except PackageNotFoundError:
            versions.append(None)
    return (dataclasses.astuple(key), tuple(versions))


def stored_manifest(workdir: Path, key: ManifestKey) -> ParsedManifest | None:
    """The working copy's last parse, if it was made for ``key`` with this dbt: a new process
    (every scheduled run) loads it in about 10 ms, where dbt's partial parsing takes a second or
    more. Anything unreadable is no manifest (the caller parses)."""
    from dbt.contracts.graph.manifest import Manifest

    path = workdir / "target" / MANIFEST_FILE
    try:
        with path.open("rb") as stored:
            # our own cache, in the user's own cache folder
            stamp, fields, environment = pickle.load(stored)
        if stamp != _manifest_stamp(key):
            return None
        return ParsedManifest(Manifest(**fields), environment)
    except Exception:  # none yet, a file cut short, or classes of another version: parse again
        return None


def store_manifest(workdir: Path, key: ManifestKey, parsed: ParsedManifest) -> None:
    """Keep ``parsed`` for the next process (written aside, then renamed: a reader sees the old
    file or the new one). A cache: a failure to write it is no error."""
    path = workdir / "target" / MANIFEST_FILE
    partial = path.with_name(f"{MANIFEST_FILE}.{os.getpid()}")
    # the manifest's public fields (its own pickling puts some in the wrong places, dbt-core 1.11);
    # the lookups, lock and caches behind them are made again as they are used
    manifest = parsed.manifest
    fields = {
        field.name: getattr(manifest, field.name)
        for field in dataclasses.fields(manifest)
        if not field.name.startswith("_")
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            pickle.dump((_manifest_stamp(key), fields, parsed.environment), out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
    except Exception:
        partial.unlink(missing_ok=True)


def forget_manifests() -> None:
    """Parse again at the next dbt command (the kept manifests dropped)."""
    _manifests.clear()


def _checked(result: Any, command: str) -> Any:
    if isinstance(result.exception, signals.Stopped):  # dbt's runner catches everything: a stop goes on
        raise result.exception
    if result.exception is not None:
        raise DetectionError(f"dbt {command} failed: {result.exception}")
    if not result.success:
        failures = []
        for node in getattr(result.result, "results", []) or []:
            if str(node.status) not in ("success", "pass", "skipped"):
                failures.append(f"{node.node.name}: {node.status}: {node.message}")
        raise DetectionError(f"dbt {command} failed: " + ("; ".join(failures) or "see the dbt log above"))
    return result


def run_dbt(
    args: list[str],
    workdir: Path,
    settings: Settings,
    detection_now: datetime | None = None,
    data_through: datetime | None = None,
) -> Any:
    """``dbt ARGS`` in the working copy with the product's vars, as of ``detection_now`` (else
    now), drops judged up to ``data_through`` (the newest data collected, when known), on the
    manifest this process parsed for the warehouse's naming (``parsed_manifest``)."""
    from dbt.cli.main import dbtRunner

    with dbt_variables(settings, detection_now, data_through):
        manifest = parsed_manifest(workdir, settings)
        dbt_vars = ["--vars", json.dumps(detection_vars(settings), sort_keys=True)]
        result = dbtRunner(manifest=manifest).invoke([*args, *dbt_vars, *dbt_arguments(workdir)])
    return _checked(result, args[0])


def build_detection(
    settings: Settings,
    events_config: EventsConfig,
    *,
    full_refresh: bool = False,
    detection_now: datetime | None = None,
    data_through: datetime | None = None,
    workdir_base: Path | None = None,
) -> DetectionResult:
    """``dbt build`` of the rules seed, the detection models and their tests."""
    started = datetime.now()
    workdir = prepare_workdir(settings, workdir_base)
    write_rules(settings, events_config)
    # --no-write-json: nothing reads the working copy's manifest.json or run_results.json (the
    # result comes back in process), and writing them is a quarter of a second every run
    args = ["build", "--quiet", "--no-write-json"]
    for selector in DETECT_EXCLUDE:
        args += ["--exclude", selector]
    if full_refresh:
        args.append("--full-refresh")
    try:
        result = run_dbt(args, workdir, settings, detection_now, data_through)
    finally:
        close_duckdb_connection(settings)
    node_results = list(getattr(result.result, "results", []) or [])
    return DetectionResult(
        seconds=(datetime.now() - started).total_seconds(),
        nodes=len(node_results),
        workdir=workdir,
        costs=[NodeCost.of(node_result) for node_result in node_results],
    )


def invoke_dbt(settings: Settings, events_config: EventsConfig, args: list[str]) -> bool:
    """Any dbt command (``dbt build``, ``dbt test``, ``dbt docs generate``…) on the configured
    warehouse, in the working copy with this configuration's rules; dbt prints as usual."""
    from dbt.cli.main import dbtRunner

    workdir = prepare_workdir(settings)
    write_rules(settings, events_config)
    try:
        with dbt_variables(settings, settings.detection_now):
            result = dbtRunner().invoke([*args, *dbt_arguments(workdir)])
        if isinstance(result.exception, signals.Stopped):
            raise result.exception
    finally:
        close_duckdb_connection(settings)
    return bool(result.success)


def close_duckdb_connection(settings: Settings) -> None:
    """dbt-duckdb keeps its database open after a build, for the life of the process. Close it: a
    later connection that closes (the alert step's) would drop DuckDB's lock on the file while this
    one could still write, and another process could then open it too."""
    if settings.warehouse != "duckdb":
        return
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def _missing_relation(settings: Settings) -> tuple[type[Exception], ...]:
    """What a read of a table that does not exist raises, on this warehouse."""
    from dlt.common.destination.exceptions import DestinationUndefinedEntity
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    missing: tuple[type[Exception], ...] = (DatabaseUndefinedRelation, DestinationUndefinedEntity)
    if settings.warehouse == "bigquery":
        from google.api_core.exceptions import NotFound

        missing += (NotFound,)
    return missing


@contextlib.contextmanager
def _client(settings: Settings, client: Any | None) -> Iterator[Any]:
    """``client`` (a caller's warehouse session, reused: each new one costs dlt's configuration),
    else a session of its own."""
    if client is not None:
        yield client
        return
    with pipeline_for(settings) as pipeline, pipeline.sql_client() as own:
        yield own


def raw_table_exists(settings: Settings, client: Any | None = None) -> bool:
    """Whether the raw table exists: a collect makes it (on BigQuery with the first configured event)."""
    with _client(settings, client) as sql:
        try:
            sql.execute_sql(f"select 1 from {sql.make_qualified_table_name(settings.table)} where 1 = 0")
        except _missing_relation(settings):
            return False
    return True


def open_incidents_summary(settings: Settings, moment: datetime | None = None, client: Any | None = None) -> str:
    """One line: the anomalous windows and incidents of the enabled rules that began in the day
    before ``moment`` (default now), and how many of those are open. Bounded by each table's
    partition column, so it reads a day's partitions, not the history."""
    since = utc(moment or datetime.now(UTC)) - timedelta(days=1)
    with _client(settings, client) as client:
        anomalies, incidents, rules = (
            client.make_qualified_table_name(name) for name in ("anomalies", "incidents", "alert_rules")
        )
        enabled = f"event_name in (select event_name from {rules} where enabled)"
        with client.execute_query(
            f"select (select count(*) from {anomalies} where {enabled} and window_end_minute >= %s), count(*), "
            f"coalesce(sum(case when status = 'open' then 1 else 0 end), 0) from {incidents} "
            f"where {enabled} and first_anomalous_minute >= %s",
            since,
            since,
        ) as cursor:
            anomaly_count, incident_count, open_count = cursor.fetchall()[0]
    return f"{anomaly_count} anomalous windows, {incident_count} incidents ({open_count} open) in the last 24 h"


def learning_lines(settings: Settings, client: Any | None = None) -> list[str]:
    """One line per enabled baseline rule still learning ("EVENT: learning: 3 of 7 days"), from the
    ``baseline_learning`` mart of the last detect; none when the warehouse does not have it yet."""
    with _client(settings, client) as sql:
        learning = sql.make_qualified_table_name("baseline_learning")
        try:
            with sql.execute_query(
                f"select event_name, history_days, needed_days from {learning} where is_learning order by event_name"
            ) as cursor:
                rows = cursor.fetchall()
        except _missing_relation(settings):
            return []
    return [f"{name}: learning: {history_days} of {needed_days} days" for name, history_days, needed_days in rows]
