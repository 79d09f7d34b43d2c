"""``python -m mixpanel_alerts.simulator`` (``just simulator``): serve a simulated Mixpanel export API
until interrupted, and print the variables that point ``mixpanel-alerts`` at it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .server import ExportSimulator
from .traffic import generate_traffic


def config_names(path: Path) -> list[str]:
    """The enabled rules' event names of an events configuration file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        names = [rule["name"] for rule in document["events"] if rule.get("enabled", True)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--config {path}: not an events configuration ({exc})") from None
    if not names:
        raise SystemExit(f"--config {path}: enables no event")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mixpanel_alerts.simulator",
        description="Serve a simulated Mixpanel Raw Event Export API on 127.0.0.1 until interrupted (Ctrl-C), "
        "with generated traffic, and print the shell lines that point mixpanel-alerts at it: paste them into "
        "another shell (or a .env file without 'export'), then run collect, backfill, run or backtest.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--events", type=int, default=10_000, help="number of events to generate")
    parser.add_argument("--names", default="page_view,checkout_completed", help="comma-separated event names")
    parser.add_argument(
        "--config", type=Path, help="an events configuration file: generate its enabled rules' events (not --names)"
    )
    parser.add_argument("--days", type=int, default=1, help="spread events over this many days before now")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated traffic")
    parser.add_argument("--project-id", default="12345")
    parser.add_argument("--hour-limit", type=int, default=60, help="queries allowed per hour")
    args = parser.parse_args(argv)
    names = config_names(args.config) if args.config else args.names.split(",")
    end = datetime.now(UTC)
    sim = ExportSimulator(project_id=args.project_id, port=args.port, per_hour_limit=args.hour_limit)
    sim.add_events(
        generate_traffic(args.events, names=names, start=end - timedelta(days=args.days), end=end, seed=args.seed)
    )
    sim.start()
    assert sim.service_account is not None
    start_date = (end - timedelta(days=args.days)).date()
    print(
        f"# a Mixpanel export simulator: {args.events:,} events of {len(names)} name(s) over {args.days} day(s), "
        f"until Ctrl-C. Point mixpanel-alerts at it:\n"
        f"export MIXPANEL_EXPORT_URL={sim.url}\n"
        f"export MIXPANEL_PROJECT_ID={sim.project_id}\n"
        f"export MIXPANEL_SERVICE_ACCOUNT_USERNAME={sim.service_account[0]}\n"
        f"export MIXPANEL_SERVICE_ACCOUNT_SECRET={sim.service_account[1]}\n"
        f"export MIXPANEL_START_DATE={start_date}\n"
        f"# then: mixpanel-alerts run, or mixpanel-alerts backfill --start-date {start_date} --end-date {end.date()}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()
        print("simulator stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
