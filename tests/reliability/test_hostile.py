"""Hostile export lines never fail a load (each becomes an event or a reject, every line is
accounted for) and hostile event names are monitored: their rules reach the ``alert_rules`` seed
intact and a spike of each is alerted exactly once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import (
    EVENTS_TABLE,
    REJECTS_TABLE,
    query,
    recent_traffic,
    rule,
    summary_numbers,
    write_events_config,
)
from tests.hostile import HOSTILE_NAMES, hostile_lines
from tests.reliability.support import (
    Runner,
    event_totals,
    ledger_rows,
    payload,
    repeated_dedup_keys,
    slack_env,
    spike,
)
from tests.slack_fake import SlackFake

SUMMARY_LINES = "collected "
SPIKE = 9


class ServesHostileLines(ExportSimulator):
    """Every export body also holds ``tests.hostile.hostile_lines`` for ``page_view``; ``served``
    counts the lines of the bodies sent."""

    hostile_at_ms = 0
    served: list[int]

    def body_for(self, params: dict[str, str]) -> bytes:
        body = super().body_for(params) + b"".join(
            line + b"\n" for line in hostile_lines("page_view", self.hostile_at_ms)
        )
        # a blank line (only whitespace) is no line of JSON lines: neither an event nor a reject
        self.served.append(sum(1 for line in body.split(b"\n") if line.strip()))
        return body


def lines_of(output: str) -> int:
    summary = next(line for line in output.splitlines() if line.startswith(SUMMARY_LINES))
    return int(summary.split("(", 1)[1].split(" lines", 1)[0].replace(",", ""))


@pytest.mark.reliability
def test_hostile_lines_and_names(
    start_sim: Callable[..., ServesHostileLines],
    make_env: Callable[..., dict[str, str]],
    slack_fake: SlackFake,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    sim = start_sim(ServesHostileLines)
    sim.served = []
    sim.hostile_at_ms = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    rules = [rule("page_view", alert_threshold=10_000), *(rule(name) for name in HOSTILE_NAMES)]
    write_events_config(tmp_path, {"events": rules})
    sim.add_events(
        [*recent_traffic(3_000, names=["page_view"], seed=61), *(e for n in HOSTILE_NAMES for e in spike(n, 2, SPIKE))]
    )
    # one alert per hostile-named rule (not a digest of them): each name reaches Slack intact on its own
    env = make_env(sim, **slack_env("bot", slack_fake), ALERT_DIGEST_THRESHOLD="100")
    runner = Runner(tmp_path)
    db_path = tmp_path / "mixpanel.duckdb"

    first = runner.run(["run"], env)
    after_first = event_totals(db_path)
    rejects_first = query(db_path, f"select count(*), count(distinct reject_id) from {REJECTS_TABLE}")[0]
    second = runner.run(["run"], env)
    rejects_second = query(db_path, f"select count(*), count(distinct reject_id) from {REJECTS_TABLE}")[0]

    accounts = []
    for result in (first, second):
        numbers = summary_numbers(result.output)
        ignored = int(result.output.split("not requested ", 1)[1].split(";", 1)[0].replace(",", ""))
        accounts.append((lines_of(result.output), numbers, ignored))
    unaccounted = [lines - sum(numbers.values()) - ignored for lines, numbers, ignored in accounts]

    seeded = [row[0] for row in query(db_path, "select event_name from mixpanel_data.alert_rules")]
    missing = [name for name in HOSTILE_NAMES if seeded.count(name) != 1]
    names_by_key = {row["dedup_key"]: row["event_name"] for row in ledger_rows(db_path) if row["kind"] == "firing"}
    per_name = Counter(names_by_key.get(str(payload(message).get("dedup_key"))) for message in slack_fake.messages)
    not_once = {name: per_name.get(name, 0) for name in HOSTILE_NAMES if per_name.get(name, 0) != 1}
    statuses = Counter(row["status"] for row in ledger_rows(db_path))
    stored = dict(query(db_path, f"select event_name, count(*) from {EVENTS_TABLE} group by 1"))
    miscounted = {name: stored.get(name, 0) for name in HOSTILE_NAMES if stored.get(name, 0) != SPIKE}
    figure(
        f"hostile lines and names: exits [{first.code}, {second.code}]; lines served {sim.served}, "
        f"read {[lines for lines, _, _ in accounts]}, unaccounted {unaccounted}; loaded "
        f"{[numbers['loaded'] for _, numbers, _ in accounts]}, rejected {[n['rejected'] for _, n, _ in accounts]}, "
        f"rejects stored {rejects_first[0]} then {rejects_second[0]}; {len(HOSTILE_NAMES)} hostile-named rules: "
        f"{len(HOSTILE_NAMES) - len(missing)} intact in alert_rules, {len(HOSTILE_NAMES) - len(miscounted)} with "
        f"their {SPIKE} events stored, alerts expected {len(HOSTILE_NAMES)}, "
        f"posted {sum(per_name[name] for name in HOSTILE_NAMES)} ({len(not_once)} not exactly once)"
    )
    problems = []
    if [first.code, second.code] != [0, 0]:
        problems.append(f"exits {first.code}, {second.code}:\n{first.output}\n{second.output}")
    if miscounted:
        problems.append(f"hostile-named events stored (expected {SPIKE} each): {miscounted}")
    if after_first != (accounts[0][1]["loaded"],) * 2 or event_totals(db_path) != after_first:
        problems.append(
            f"the summary says loaded {accounts[0][1]['loaded']} then {accounts[1][1]['loaded']}; the raw table "
            f"holds {after_first} (rows, distinct) after the first run, {event_totals(db_path)} after the second"
        )
    if accounts[1][1]["loaded"] != 0:
        problems.append(f"the rerun loaded {accounts[1][1]['loaded']} events again")
    if not_once:
        problems.append(f"hostile-named rules not alerted exactly once: {not_once}")
    if repeated_dedup_keys(slack_fake) or set(statuses) != {"sent"}:
        problems.append(f"repeated messages {repeated_dedup_keys(slack_fake)}, ledger {dict(statuses)}")
    if missing:
        problems.append(f"rules missing or changed in alert_rules: {[json.dumps(name) for name in missing]}")
    if unaccounted != [0, 0]:
        problems.append(f"lines neither loaded, skipped, rejected nor ignored: {unaccounted} ({accounts})")
    if [lines for lines, _, _ in accounts] != sim.served:
        problems.append(f"lines served {sim.served}, the summary counts {[lines for lines, _, _ in accounts]}")
    if rejects_second != rejects_first or rejects_first[0] != rejects_first[1]:
        problems.append(f"rejects (rows, distinct reject_id): {rejects_first} then {rejects_second}")
    assert not problems, "\n".join(problems)
