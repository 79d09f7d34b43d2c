"""``python -m mixpanel_alerts.simulator``: serve a simulated Mixpanel export API until interrupted."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from .server import ExportSimulator
from .traffic import generate_traffic


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mixpanel_alerts.simulator",
        description="Serve a simulated Mixpanel Raw Event Export API on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--events", type=int, default=10_000, help="number of events to generate")
    parser.add_argument("--names", default="page_view,checkout_completed", help="comma-separated event names")
    parser.add_argument("--days", type=int, default=1, help="spread events over this many days before now")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated traffic")
    parser.add_argument("--project-id", default="12345")
    parser.add_argument("--hour-limit", type=int, default=60, help="queries allowed per hour")
    args = parser.parse_args(argv)
    end = datetime.now(UTC)
    sim = ExportSimulator(project_id=args.project_id, port=args.port, per_hour_limit=args.hour_limit)
    sim.add_events(
        generate_traffic(
            args.events, names=args.names.split(","), start=end - timedelta(days=args.days), end=end, seed=args.seed
        )
    )
    sim.start()
    print(sim.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
