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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import requests

from .simulator import EXPORT_PATH

NAMES = ["impression_error_null_pointer_detected", "checkout_completed", "page_view"]
SERVICE_ACCOUNT = ("sim-user.mp-service-account", "sim-secret")
PROJECT_ID = "12345"


def _events_config() -> str:
    rules = [
        {"name": name, "enabled": True, "alert_threshold": 100, "alert_channel": "#bench", "time_window_minutes": 1}
        for name in NAMES
    ]
    return json.dumps({"events": rules})


def start_simulator(events: int, days: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "mixpanel_alerts.simulator", "--events", str(events), "--days", str(days),
        "--names", ",".join(NAMES), "--project-id", PROJECT_ID, "--hour-limit", "1000",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise SystemExit("the simulator did not start")
    return process, url


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
        "--repeat", type=int, default=3, help="time collect and read_json this many times each (default 3)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mixpanel-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
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


if __name__ == "__main__":
    main()
