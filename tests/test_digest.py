"""Flood control: more new incidents in a run than ALERT_DIGEST_THRESHOLD go out as one digest per
channel, none lost under Slack faults; the digest message itself as a plain function call."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mixpanel_alerts.alerts.notices import digest_message, size
from mixpanel_alerts.simulator import ExportSimulator
from tests.alert_plan_builders import recent
from tests.alert_runs import CHECKOUT, LEDGER, iso, spike
from tests.conftest import output_of, query, rule, write_events_config
from tests.slack_fake import BOT_TOKEN, SlackFake

# --- end to end -----------------------------------------------------------------------------------


def test_more_new_incidents_than_the_digest_threshold_go_out_as_one_digest_and_none_is_lost(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    slack_fake: SlackFake, db_path: Path,
) -> None:  # fmt: skip
    names = [f"error_{index}" for index in range(7)]
    write_events_config(
        tmp_path, {"events": [*(rule(name) for name in names), rule(CHECKOUT, alert_channel="#alerts-checkout")]}
    )
    for index, name in enumerate(names):
        sim.add_events(spike(name, 2, 8 + 3 * index))
    sim.add_events(spike(CHECKOUT, 2, 9))
    env = make_env(sim, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_fake.api_url)
    slack_fake.inject("503", "503", "503", method="chat.postMessage")  # the digest's three posts of the first run

    down = run_cli(["run"], env)
    assert down.returncode == 1, output_of(down)
    statuses = dict(query(db_path, f"select kind, count(*) from {LEDGER} where status = 'pending' group by kind"))
    # the digest and its incidents stay pending, bound together; after three 503s in a row the run
    # stops posting (chat.postMessage), so the other channel's alert waits for the next run too
    assert statuses == {"firing": 8, "digest": 1}

    back = run_cli(["run"], env)
    assert back.returncode == 0, output_of(back)
    digests = [message for message in slack_fake.messages if message["channel"] == "C0ERRORS"]
    assert len(digests) == 1, [message["text"] for message in slack_fake.messages]
    text = json.dumps(digests[0]["blocks"])
    assert "7 new incidents" in digests[0]["text"]
    assert [name for name in reversed(names) if name in text] == list(reversed(names))
    assert text.index("error_6") < text.index("error_0"), "biggest first"
    assert len([message for message in slack_fake.messages if message["channel"] == "C0CHECKOUT"]) == 1
    rows = query(db_path, f"select status, slack_ts, digest_id from {LEDGER} where event_name like 'error_%'")
    assert {row[0] for row in rows} == {"sent"} and {row[1] for row in rows} == {digests[0]["ts"]}
    assert len({row[2] for row in rows}) == 1
    # ten minutes on, all are over: each resolved notice goes into its alert's thread, and those of
    # the digest's incidents stay there (not broadcast to the channel: the flood would come back)
    later = run_cli(["run"], {**env, "DETECTION_NOW": iso(datetime.now(UTC) + timedelta(minutes=10))})
    assert later.returncode == 0, output_of(later)
    notices = slack_fake.messages[2:]
    assert len(notices) == 8 and all("resolved" in message["text"] for message in notices), "no alert again"
    in_digest = [message for message in notices if message.get("thread_ts") == digests[0]["ts"]]
    assert len(in_digest) == 7 and not any(message["reply_broadcast"] for message in in_digest)
    [checkout] = [message for message in notices if message["channel"] == "C0CHECKOUT"]
    assert checkout["reply_broadcast"], "a single alert's notice is shown in the channel too"


# --- the message ----------------------------------------------------------------------------------


def test_a_digest_lists_its_incidents_biggest_first_and_escapes_them() -> None:
    small = recent(incident_id="a", event_name="small", peak_count=7)
    big = recent(incident_id="b", event_name="<!channel> big", peak_count=500)
    message = digest_message("#alerts-errors", [small, big])
    body = "\n".join(block["text"]["text"] for block in message.blocks if block["type"] == "section")
    assert body.index("big") < body.index("small") and "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "2 new incidents" in message.text and "small" in message.text
    assert size(big) > size(small)


def test_a_digest_of_many_stays_within_block_kit_limits() -> None:
    many = [recent(incident_id=str(index), event_name=f"event_{index:03d}_" + "x" * 80) for index in range(300)]
    message = digest_message("#c", many)
    assert len(message.blocks) <= 50 and all(len(block["text"]["text"]) <= 3000 for block in message.blocks
                                            if block["type"] == "section")  # fmt: skip
    assert "… and 260 more" in str(message.blocks)
