"""``just bench``: how fast ``mixpanel-alerts collect`` loads a large export, against DuckDB's own
``read_json`` of the same file, measured in one run on the same machine (compare the ratio, not
the seconds: machines here are shared and noisy).

1. A simulator subprocess serves N events (realistic properties) over loopback with gzip.
2. The export body is downloaded once exactly as the collector will ask for it and saved as the
   gzipped file the wire carries; this also warms the simulator's cache.
3. ``mixpanel-alerts collect`` runs into a fresh DuckDB file (wall time, peak RSS of the process),
   then DuckDB's ``read_json`` loads the same file into a fresh DuckDB file (wall time); the pair
   runs ``--repeat`` times, each after ``os.sync()`` so no step pays for the previous one's
   writes, and the medians are compared.
5. ``mixpanel-alerts detect``: a first build, then an incremental run over the 1M events; then
   older history is added to the raw table (synthetic rows written by SQL, outside the
   late-arrival lookback, up to ``--history-events`` in all), the models are rebuilt with
   ``--full-refresh``, and an incremental run is timed again. The two incremental times should be
   close: a detection run's work follows recent data, not history.
6. A ``run`` that finds nothing new (``--run-only`` runs this part alone): the simulator serves a day
   of events for ``--rules`` threshold rules, a first ``mixpanel-alerts run`` collects and detects
   them, then ``--repeat`` more runs find nothing new (the simulator serves nothing new): their
   median time (target <= 6 s), and how much of it dbt's parse and build take.
7. Flat with history, in proportion to new data (``--history-only`` runs this part alone):
   ``--rules`` baseline rules with 7, 35, then 180 days of minute history (as in 8), each built with
   ``detect --full-refresh``; then, from a copy of that state each time, a fixed number of new
   events arrives (nine in ten in the 5 minutes after the build's moment, one in ten late, in the
   day before it) and an incremental ``detect`` runs as of 5 minutes later. Its time and the rows
   dbt's queries scanned (DuckDB's profiler: each query's total_rows_scanned, and its table scans
   of the raw table), for 10k new events on 7, 35 and 180 days (targets: 180/7 and 180/35 days
   <= 1.2x; a baseline learns from 28 days, so a 7-day history has less of it to read), and for
   1k, 10k and 100k new events on 180 days. The rows are counted as DuckDB reads them: whole
   vectors of the row groups a bound does not skip.
8. Baseline vs threshold (``--detect-only`` runs this part alone): ``--rules`` events with
   ``--days`` of minute history (synthetic counts with a daily and a weekly rhythm and Poisson-like
   noise, written straight into the raw table by SQL), once as baseline rules and once as threshold
   rules, each in its own DuckDB file: a first ``detect --full-refresh`` of each, then incremental
   ``detect`` runs alternating between the two (``--repeat``); the medians, their ratio (target
   <= 2.0x) and the peak RSS of each ``detect`` process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import requests

from .simulator import EXPORT_PATH

NAMES = ["impression_error_null_pointer_detected", "checkout_completed", "page_view"]
# the developer's own settings must not reach the detect timing
FOREIGN_PREFIXES = (
    "MIXPANEL_",
    "EVENTS_",
    "SLACK_",
    "BIGQUERY_",
    "GCP_",
    "DUCKDB_",
    "WAREHOUSE",
    "DETECTION_",
    "ALERT_",
)
SERVICE_ACCOUNT = ("sim-user.mp-service-account", "sim-secret")
PROJECT_ID = "12345"


def _events_config() -> str:
    rules = [
        {"name": name, "enabled": True, "alert_threshold": 100, "alert_channel": "#bench", "time_window_minutes": 1}
        for name in NAMES
    ]
    return json.dumps({"events": rules})


def start_simulator(events: int, days: int, names: list[str] = NAMES) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "mixpanel_alerts.simulator", "--events", str(events), "--days", str(days),
        "--names", ",".join(names), "--project-id", PROJECT_ID, "--hour-limit", "1000",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    # it prints the shell lines that point the CLI at it: the URL is on the MIXPANEL_EXPORT_URL one
    for line in process.stdout:
        if line.startswith("export MIXPANEL_EXPORT_URL="):
            return process, line.strip().split("=", 1)[1]
    process.kill()
    raise SystemExit("the simulator did not start")


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (of the process and its children), combined output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.communicate()[0]
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mb, output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mixpanel_alerts.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events to serve (default 1,000,000)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp folder)")
    parser.add_argument(
        "--history-events", type=int, default=10_000_000, help="events of history for the second detect timing"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="time collect and read_json (and detect runs) this many times each"
    )
    parser.add_argument("--detect-only", action="store_true", help="only the baseline vs threshold detect timing")
    parser.add_argument("--run-only", action="store_true", help="only the timing of a run that finds nothing new")
    parser.add_argument(
        "--history-only", action="store_true", help="only detect's time and rows read against history and new data"
    )
    parser.add_argument("--profiled-detect", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rules", type=int, default=50, help="rules in the detect timing (default 50)")
    parser.add_argument("--days", type=int, default=35, help="days of minute history in the detect timing (default 35)")
    parser.add_argument("--rate", type=float, default=2.0, help="mean events per minute per rule (default 2)")
    args = parser.parse_args(argv)
    if args.profiled_detect:
        profiled_detect()
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mixpanel-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.detect_only:
        for line in bench_detectors(workdir, args.rules, args.days, args.rate, args.repeat):
            print(line)
        return
    if args.run_only:
        print(bench_no_change_run(workdir, args.rules, args.repeat))
        return
    if args.history_only:
        for line in bench_history(workdir, args.rules, args.rate, args.repeat):
            print(line)
        return
    days = 1
    print(f"bench: generating {args.events:,} events in the simulator ...", flush=True)
    simulator, url = start_simulator(args.events, days)
    try:
        today = datetime.now(UTC).date()
        start = today - timedelta(days=days + 1)
        params = {
            "from_date": start.isoformat(),
            "to_date": today.isoformat(),
            "event": json.dumps(sorted(NAMES)),
            "time_in_ms": "true",
            "project_id": PROJECT_ID,
        }
        export_file = workdir / "export.jsonl.gz"
        with requests.get(
            url + EXPORT_PATH,
            params=params,
            auth=SERVICE_ACCOUNT,
            stream=True,
            headers={"Accept-Encoding": "gzip"},
            timeout=600,
        ) as response:
            response.raise_for_status()
            with open(export_file, "wb") as handle:
                for chunk in response.raw.stream(1 << 20, decode_content=False):
                    handle.write(chunk)
        print(f"bench: export body {export_file.stat().st_size / 1e6:,.1f} MB gzipped", flush=True)

        database = workdir / "collect.duckdb"
        database.unlink(missing_ok=True)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("MIXPANEL_", "EVENTS_"))},
            "MIXPANEL_EXPORT_URL": url,
            "MIXPANEL_PROJECT_ID": PROJECT_ID,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SERVICE_ACCOUNT[0],
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": SERVICE_ACCOUNT[1],
            "MIXPANEL_START_DATE": start.isoformat(),
            "EVENTS_CONFIG": _events_config(),
            "DUCKDB_PATH": str(database),
            "WAREHOUSE": "duckdb",
        }
        # Alternate the two, each on a fresh file after the disk has settled (os.sync), and compare
        # medians: one step's pending writes must not slow the next, and the machine is shared.
        collect_runs: list[float] = []
        read_json_runs: list[float] = []
        collect_rss = 0.0
        baseline_db = workdir / "read_json.duckdb"
        for attempt in range(1, args.repeat + 1):
            database.unlink(missing_ok=True)
            os.sync()
            seconds, peak_mb, output = run_measured(["mixpanel-alerts", "collect"], env, workdir)
            collect_runs.append(seconds)
            collect_rss = max(collect_rss, peak_mb)
            summary = output.strip().splitlines()[-1]
            with duckdb.connect(str(database), read_only=True) as con:
                loaded = con.execute("select count(*) from mixpanel_data.mixpanel_events").fetchall()[0][0]

            baseline_db.unlink(missing_ok=True)
            os.sync()
            started = time.perf_counter()
            with duckdb.connect(str(baseline_db)) as con:
                con.execute(f"create table events as select * from read_json('{export_file}')")
                baseline_rows = con.execute("select count(*) from events").fetchall()[0][0]
            read_json_runs.append(time.perf_counter() - started)
            print(
                f"bench: run {attempt}: collect {collect_runs[-1]:.2f} s, read_json {read_json_runs[-1]:.2f} s",
                flush=True,
            )
        collect_s = statistics.median(collect_runs)
        read_json_s = statistics.median(read_json_runs)
    finally:
        simulator.terminate()
        simulator.wait()

    detect_first_s, _, _ = run_measured(["mixpanel-alerts", "detect"], env, workdir)
    detect_small_s, _, _ = run_measured(["mixpanel-alerts", "detect"], env, workdir)
    older = max(args.history_events - loaded, 0)
    add_history(database, older)
    refresh_s, _, _ = run_measured(["mixpanel-alerts", "detect", "--full-refresh"], env, workdir)
    detect_large_s, _, _ = run_measured(["mixpanel-alerts", "detect"], env, workdir)

    print(f"collect summary: {summary}")
    print(f"events served:           {args.events:,} (collected {loaded:,}, read_json {baseline_rows:,})")
    print(f"collect:                 {collect_s:6.2f} s  ({loaded / collect_s:,.0f} events/s, median of {args.repeat})")
    read_json_rate = baseline_rows / read_json_s
    print(f"duckdb read_json:        {read_json_s:6.2f} s  ({read_json_rate:,.0f} events/s, median of {args.repeat})")
    print(f"ratio collect/read_json: {collect_s / read_json_s:6.2f}x  (target <= 2.5x)")
    print(f"collect peak RSS:        {collect_rss:6.0f} MB (target <= 1536 MB)")
    print(f"detect, first build:     {detect_first_s:6.2f} s  ({loaded:,} events)")
    print(f"detect, incremental:     {detect_small_s:6.2f} s  with {loaded:,} events of history")
    print(f"detect --full-refresh:   {refresh_s:6.2f} s  with {loaded + older:,} events of history")
    print(
        f"detect, incremental:     {detect_large_s:6.2f} s  with {loaded + older:,} events of history "
        f"({detect_large_s / detect_small_s:.2f}x the first)"
    )
    print(bench_no_change_run(workdir, args.rules, args.repeat))
    for line in bench_history(workdir, args.rules, args.rate, args.repeat):
        print(line)
    for line in bench_detectors(workdir, args.rules, args.days, args.rate, args.repeat):
        print(line)


def add_history(database: Path, count: int) -> None:
    """``count`` synthetic older events (7 to 90 days ago, before the late-arrival lookback)."""
    if count <= 0:
        return
    names = ", ".join(f"'{name}'" for name in NAMES)
    with duckdb.connect(str(database)) as con:
        con.execute(
            f"""
            insert into mixpanel_data.mixpanel_events
                (event_id, event_name, event_timestamp, distinct_id, insert_id, properties,
                 mp_processing_time, inserted_at)
            select
                md5('history-' || i::varchar),
                ([{names}])[1 + i % 3],
                now() - interval 7 day - to_milliseconds(i * (83 * 86400000::bigint // {count})),
                'user-' || (i % 50000)::varchar,
                md5('insert-' || i::varchar),
                '{{"bench": "history"}}'::json,
                now() - interval 7 day,
                now()
            from range({count}) as t(i)
            """
        )


def run_own(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of this process alone (its own rusage, from wait4), output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def bench_rule_names(rules: int) -> list[str]:
    return [f"bench_event_{index:03d}" for index in range(rules)]


# SQL: a minute's count drawn around its ``mean`` (a normal draw by Box-Muller, with the Poisson's spread)
POISSON_LIKE_COUNT = (
    "greatest(0, round(mean + sqrt(mean) * sqrt(-2 * ln(random() + 1e-12)) * cos(2 * pi() * random())))::int"
)


def create_raw_table(con: duckdb.DuckDBPyConnection) -> None:
    """A fresh, empty raw table with the columns collect writes, for events written by SQL."""
    con.execute("create schema if not exists mixpanel_data")
    con.execute(
        """
        create or replace table mixpanel_data.mixpanel_events (
            event_id varchar, event_name varchar, event_timestamp timestamp with time zone,
            distinct_id varchar, insert_id varchar, properties json,
            mp_processing_time timestamp with time zone, inserted_at timestamp with time zone
        )
        """
    )


def write_seasonal_history(database: Path, names: list[str], days: int, rate: float, end: datetime) -> int:
    """Minute counts with a daily and a weekly rhythm and Poisson-like noise, as raw events, for
    ``days`` days before ``end``; each rule its own volume (0.1x to 1.9x ``rate``); the events written."""
    start = end - timedelta(days=days)
    listed = ", ".join(f"'{name}'" for name in names)
    with duckdb.connect(str(database)) as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("select setseed(0.42)")
        create_raw_table(con)
        con.execute(
            f"""
            insert into mixpanel_data.mixpanel_events
            with rules as (
                select name, {rate} * (0.1 + 1.8 * (index - 1) / greatest(len([{listed}]) - 1, 1)) as scale
                from (select unnest([{listed}]) as name, generate_subscripts([{listed}], 1) as index)
            ),
            minutes as (
                select minute_index, timestamptz '{start:%Y-%m-%d %H:%M:%S}+00' + to_minutes(minute_index) as minute_at
                from range({days * 1440}) as t(minute_index)
            ),
            expected as (
                select
                    name, minute_index, minute_at,
                    scale
                    * (1 + 0.7 * sin(2 * pi() * (minute_index % 1440) / 1440.0 - pi() / 2))
                    * (case when dayofweek(minute_at) in (0, 6) then 0.6 else 1.0 end) as mean
                from rules cross join minutes
            ),
            counted as (
                select name, minute_index, minute_at,
                    {POISSON_LIKE_COUNT} as n
                from expected
            ),
            spread as (
                select name, minute_index, minute_at, n, unnest(range(n)) as k from counted where n > 0
            )
            select
                name || '-' || minute_index::varchar || '-' || k::varchar,
                name,
                minute_at + to_milliseconds((k * 59000) // n),
                'user-' || (k % 100)::varchar,
                null,
                '{{"bench": "seasonal"}}'::json,
                minute_at + to_milliseconds((k * 59000) // n),
                now()
            from spread
            """
        )
        return int(con.execute("select count(*) from mixpanel_data.mixpanel_events").fetchall()[0][0])


def detector_config(names: list[str], detector: str) -> str:
    rules = []
    for name in names:
        entry: dict[str, object] = {
            "name": name, "enabled": True, "alert_channel": "#bench", "time_window_minutes": 5, "detector": detector
        }  # fmt: skip
        if detector == "threshold":
            entry["alert_threshold"] = 1_000_000
        rules.append(entry)
    return json.dumps({"events": rules})


def computes_baseline(database: Path) -> bool:
    """Whether the models computed an expected count for some window (the baseline is built)."""
    with duckdb.connect(str(database), read_only=True) as con:
        for table in ("int_event_window_bands", "int_event_window_counts"):
            columns = con.execute(
                "select column_name from duckdb_columns() where table_name = ? "
                "union all select column_name from information_schema.columns where table_name = ?",
                [table, table],
            ).fetchall()
            if ("expected_count",) in columns:
                found = con.execute(
                    f"select count(*) from mixpanel_data.{table} where expected_count is not null"
                ).fetchall()
                return bool(found[0][0])
    return False


def bench_no_change_run(workdir: Path, rules: int, repeat: int) -> str:
    """``mixpanel-alerts run`` with ``rules`` threshold rules when nothing is new: a first run
    collects and detects a day of events, then ``repeat`` runs find nothing new; their median."""
    names = bench_rule_names(rules)
    print(f"bench: a run that finds nothing new, {rules} rules ...", flush=True)
    simulator, url = start_simulator(200 * rules, 1, names)
    try:
        database = workdir / "no-change.duckdb"
        database.unlink(missing_ok=True)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)},
            "MIXPANEL_EXPORT_URL": url,
            "MIXPANEL_PROJECT_ID": PROJECT_ID,
            "MIXPANEL_SERVICE_ACCOUNT_USERNAME": SERVICE_ACCOUNT[0],
            "MIXPANEL_SERVICE_ACCOUNT_SECRET": SERVICE_ACCOUNT[1],
            "MIXPANEL_START_DATE": (datetime.now(UTC).date() - timedelta(days=2)).isoformat(),
            "EVENTS_CONFIG": detector_config(names, "threshold"),
            "DUCKDB_PATH": str(database),
            "WAREHOUSE": "duckdb",
        }
        first_s, _, _ = run_own(["mixpanel-alerts", "run"], env, workdir)
        runs: list[float] = []
        dbt_runs: list[float] = []
        for attempt in range(1, repeat + 1):
            seconds, _, output = run_own(["mixpanel-alerts", "run"], env, workdir)
            loaded = re.search(r"loaded ([\d,]+)", output)
            detected = re.search(r"dbt nodes in ([\d.]+) s", output)
            if loaded is None or loaded.group(1) != "0" or detected is None:
                raise SystemExit(f"the run after the first one was to find nothing new, and detect:\n{output}")
            runs.append(seconds)
            dbt_runs.append(float(detected.group(1)))
            print(f"bench: run {attempt}: a run that finds nothing new {seconds:.2f} s", flush=True)
    finally:
        simulator.terminate()
        simulator.wait()
    return (
        f"run, nothing new:        {statistics.median(runs):6.2f} s  with {rules} rules, dbt's parse and build "
        f"{statistics.median(dbt_runs):.1f} s of it (median of {repeat}; the first run {first_s:.2f} s; target <= 6 s)"
    )


def bench_detectors(workdir: Path, rules: int, days: int, rate: float, repeat: int) -> list[str]:
    """Incremental ``detect`` of ``rules`` baseline rules vs the same rules as threshold rules."""
    names = bench_rule_names(rules)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    print(f"bench: writing {days} days of minute history for {rules} rules ...", flush=True)
    started = time.perf_counter()
    files = {detector: workdir / f"detect-{detector}.duckdb" for detector in ("baseline", "threshold")}
    for path in files.values():
        path.unlink(missing_ok=True)
    events = write_seasonal_history(files["baseline"], names, days, rate, end)
    shutil.copyfile(files["baseline"], files["threshold"])
    print(f"bench: {events:,} events in {time.perf_counter() - started:.1f} s", flush=True)
    base_env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)},
        "MIXPANEL_PROJECT_ID": PROJECT_ID,
        "WAREHOUSE": "duckdb",
        "DETECTION_NOW": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    envs = {
        detector: {**base_env, "DUCKDB_PATH": str(path), "EVENTS_CONFIG": detector_config(names, detector)}
        for detector, path in files.items()
    }
    full: dict[str, tuple[float, float]] = {}
    for detector, env in envs.items():
        seconds, peak_mb, _ = run_own(["mixpanel-alerts", "detect", "--full-refresh"], env, workdir)
        full[detector] = (seconds, peak_mb)
        print(f"bench: {detector}: first build {seconds:.1f} s, peak RSS {peak_mb:.0f} MB", flush=True)
    incremental: dict[str, list[float]] = {detector: [] for detector in envs}
    peaks: dict[str, float] = {detector: 0.0 for detector in envs}
    for attempt in range(1, repeat + 1):
        for detector, env in envs.items():
            os.sync()
            seconds, peak_mb, _ = run_own(["mixpanel-alerts", "detect"], env, workdir)
            incremental[detector].append(seconds)
            peaks[detector] = max(peaks[detector], peak_mb)
        print(
            f"bench: run {attempt}: incremental detect baseline {incremental['baseline'][-1]:.2f} s, "
            f"threshold {incremental['threshold'][-1]:.2f} s",
            flush=True,
        )
    baseline_s, threshold_s = (statistics.median(incremental[detector]) for detector in ("baseline", "threshold"))
    built = "baseline" if computes_baseline(files["baseline"]) else "threshold (these models compute no baseline)"
    return [
        f"detect, {rules} rules x {days} days ({events:,} events), detector built for the baseline rules: {built}",
        f"detect --full-refresh:   baseline {full['baseline'][0]:6.2f} s, threshold {full['threshold'][0]:6.2f} s",
        f"detect, incremental:     baseline {baseline_s:6.2f} s, threshold {threshold_s:6.2f} s (median of {repeat})",
        f"ratio baseline/threshold: {baseline_s / threshold_s:5.2f}x  (target <= 2.0x)",
        f"detect peak RSS:         baseline {max(peaks['baseline'], full['baseline'][1]):6.0f} MB, "
        f"threshold {max(peaks['threshold'], full['threshold'][1]):6.0f} MB",
    ]


ROWS_LINE = "bench-rows-scanned"


def profiled_detect() -> None:
    """``mixpanel-alerts detect`` in this process, with DuckDB's profiler on every query dbt runs:
    the rows they scanned in all, and those of their scans of the raw table, printed last
    (ROWS_LINE). Measurement only: dbt-duckdb's cursor is wrapped, nothing else changes."""
    from dbt.adapters.duckdb.environments import local
    from rich.console import Console

    from . import orchestration
    from .core.config import load_settings
    from .core.events_config import load_events_config
    from .core.secrets import resolve_secrets

    class Printed:
        """The run's lines on stderr, as the CLI's (the bench reads only its last stdout line)."""

        console = Console(stderr=True)

        def info(self, text: str) -> None:
            print(text, file=sys.stderr, flush=True)

        note = info

        def progress(self) -> Any:
            return lambda stage, numbers: None

    totals = {"rows": 0, "raw": 0, "queries": 0}
    execute = local.DuckDBCursorWrapper.execute

    def raw_rows(operator: dict[str, Any]) -> int:
        """Rows the plan's scans of the raw table read (its TABLE_SCAN operators)."""
        table = str((operator.get("extra_info") or {}).get("Table", ""))
        own = int(operator.get("rows_scanned") or 0) if "mixpanel_events" in table else 0
        return own + sum(raw_rows(child) for child in operator.get("children") or [])

    def measured(self: local.DuckDBCursorWrapper, sql: str, bindings: Any = None) -> Any:
        # on every query: dbt opens cursors as it goes, and a new one may reuse a closed one's id
        cursor = self._cursor
        cursor.execute("pragma enable_profiling = 'no_output'")
        cursor.execute("set profiling_mode = 'detailed'")
        result = execute(self, sql, bindings)
        profile = json.loads(cursor.get_profiling_information(format="json") or "{}")
        totals["rows"] += int((profile.get("query") or {}).get("total_rows_scanned") or 0)
        totals["raw"] += sum(raw_rows(operator) for operator in profile.get("operator") or [])
        totals["queries"] += 1
        return result

    local.DuckDBCursorWrapper.execute = measured  # type: ignore[method-assign]
    try:
        settings = resolve_secrets(load_settings())
        events_config = load_events_config(settings)
        reporter = Printed()
        with orchestration.recorded("detect", settings, reporter) as record:
            orchestration.detect_step(settings, events_config, reporter, record=record)
    finally:
        print(f"{ROWS_LINE} {totals['rows']} {totals['raw']} {totals['queries']}", flush=True)


def add_new_events(database: Path, names: list[str], count: int, moment: datetime) -> None:
    """``count`` new events of ``names``, loaded now: nine in ten in the 5 minutes after
    ``moment``, one in ten late, in the day before it."""
    listed = ", ".join(f"'{name}'" for name in names)
    with duckdb.connect(str(database)) as con:
        con.execute(
            f"""
            insert into mixpanel_data.mixpanel_events
            select
                'new-' || i::varchar,
                ([{listed}])[1 + i % {len(names)}],
                case
                    when i % 10 = 0 then timestamptz '{moment:%Y-%m-%d %H:%M:%S}+00'
                        - to_milliseconds(1 + (i * 7919) % 86400000)
                    else timestamptz '{moment:%Y-%m-%d %H:%M:%S}+00' + to_milliseconds((i * 7919) % 300000)
                end,
                'user-' || (i % 100)::varchar, null, '{{"bench": "new"}}'::json, now(), now()
            from range({count}) as t(i)
            """
        )


def bench_history(workdir: Path, rules: int, rate: float, repeat: int) -> list[str]:
    """An incremental ``detect``'s time and rows read, against history (7, 35 and 180 days, 10k new
    events) and against new data (1k, 10k, 100k new events on 180 days); medians of ``repeat``."""
    names = bench_rule_names(rules)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    later = end + timedelta(minutes=5)
    measured: dict[tuple[int, int], tuple[float, int, int]] = {}
    for days, news in ((7, (10_000,)), (35, (10_000,)), (180, (1_000, 10_000, 100_000))):
        database = workdir / f"history-{days}.duckdb"
        database.unlink(missing_ok=True)
        print(f"bench: {days} days of minute history for {rules} baseline rules ...", flush=True)
        events = write_seasonal_history(database, names, days, rate, end)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFIXES)},
            "MIXPANEL_PROJECT_ID": PROJECT_ID,
            "WAREHOUSE": "duckdb",
            "DUCKDB_PATH": str(database),
            "EVENTS_CONFIG": detector_config(names, "baseline"),
        }
        seconds, _, _ = run_own(
            ["mixpanel-alerts", "detect", "--full-refresh"], {**env, "DETECTION_NOW": _iso(end)}, workdir
        )
        print(f"bench: {events:,} events, first build {seconds:.1f} s", flush=True)
        built = database.with_suffix(".built")
        shutil.copyfile(database, built)
        for new in news:
            runs: list[tuple[float, int, int]] = []
            for _ in range(repeat):
                shutil.copyfile(built, database)
                add_new_events(database, names, new, end)
                os.sync()
                command = [sys.executable, "-m", "mixpanel_alerts.bench", "--profiled-detect"]
                seconds, _, output = run_own(command, {**env, "DETECTION_NOW": _iso(later)}, workdir)
                rows, raw, _ = (int(value) for value in output.rsplit(ROWS_LINE, 1)[1].split()[:3])
                runs.append((seconds, rows, raw))
            median_s = statistics.median(run[0] for run in runs)
            measured[(days, new)] = (median_s, runs[0][1], runs[0][2])
            rows_read = runs[0][1]
            print(f"bench: {days} days, {new:,} new: detect {median_s:.2f} s, {rows_read:,} rows read", flush=True)
        built.unlink()
    lines = [
        f"detect vs history, {rules} baseline rules, 10,000 new events (median of {repeat}; rows: DuckDB's profiler):"
    ]
    for days in (7, 35, 180):
        seconds, rows, raw = measured[(days, 10_000)]
        lines.append(f"  {days:>3} days: {seconds:6.2f} s, {rows:>12,} rows read ({raw:,} of the raw table)")
    (long_s, long_rows, _) = measured[(180, 10_000)]
    for days in (7, 35):
        # a baseline learns from 28 days: below that, a shorter history has less to read
        short_s, short_rows, _ = measured[(days, 10_000)]
        lines.append(
            f"  ratio 180/{days} days: time {long_s / short_s:.2f}x, rows read {long_rows / short_rows:.2f}x"
            "  (targets <= 1.2x)"
        )
    lines.append("detect vs new data, 180 days stored:")
    for new in (1_000, 10_000, 100_000):
        seconds, rows, raw = measured[(180, new)]
        lines.append(f"  {new:>7,} new events: {seconds:6.2f} s, {rows:>12,} rows read ({raw:,} of the raw table)")
    return lines


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    main()
