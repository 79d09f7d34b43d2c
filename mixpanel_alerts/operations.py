"""Day-two commands: ``status`` (what the pipeline did and what it watches), and ``silence``,
``silences`` and ``unsilence`` (muting an event's alerts for a while).

Both read and write the warehouse in a run's turn (``orchestration.session``): on DuckDB they wait
for a running run, and a run waits for them (a moment). Silences are rows in ``alert_silences``, so
they hold on a stateless runtime; the alert step reads them on every run.
"""

from __future__ import annotations

import dataclasses
import getpass
from datetime import datetime, timedelta
from typing import Any

from .alerts.ledger import UNDELIVERED, Ledger
from .alerts.silences import Silence, Silences, active_silences, covering, new_silence
from .core.config import ConfigError, Settings
from .core.events_config import EventsConfig
from .core.times import utc
from .core.warehouse import columns_of, undefined_relation_errors
from .orchestration import session
from .runs import RunHistory, RunRecord, minutes, newest_in_raw, sql_time

RECENT_RUNS = 5


def silence_target(events_config: EventsConfig, text: str) -> tuple[str, str | None]:
    """What ``silence TEXT`` mutes: an event (every rule of it: ``(event, None)``), else a rule by
    its id (``(its event, rule id)``). An event name wins over another rule's id."""
    if events_config.rules_of_event(text):
        return text, None
    rule = events_config.rule(text)
    if rule is not None:
        return rule.name, rule.rule_id
    names = ", ".join(dict.fromkeys(rule.name for rule in events_config.events)) or "none"
    ids = ", ".join(rule.rule_id for rule in events_config.events if rule.rule_id != rule.name)
    raise ConfigError(
        f"{text!r} has no rule in {events_config.source}: neither an event nor a rule id (its events: {names}"
        + (f"; its rule ids: {ids}" if ids else "")
        + "); names are case-sensitive"
    )


def add_silence(
    settings: Settings, events_config: EventsConfig, target: str, *, until: datetime, reason: str
) -> Silence:
    """Mute ``target``: an event (all its rules) or one rule, by its id."""
    event_name, rule_id = silence_target(events_config, target)
    now = settings.now()
    if until <= now:
        raise ConfigError(f"--until {until:%Y-%m-%d %H:%M} UTC is not in the future")
    if not reason.strip():
        raise ConfigError("--reason is empty: say why, for whoever reads `mixpanel-alerts silences` next")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a container
        user = "unknown"
    silence = new_silence(event_name, now=now, until=until, reason=reason.strip(), created_by=user, rule_id=rule_id)
    with session(settings, "silence") as client:
        store = Silences(client, settings.warehouse)
        store.ensure()
        store.add(silence)
    return silence


def list_silences(settings: Settings, *, include_ended: bool = False) -> list[Silence]:
    now = settings.now()
    with session(settings, "silences") as client:
        silences = Silences(client, settings.warehouse).all()
    return [silence for silence in silences if include_ended or silence.active(now)]


def end_silences(settings: Settings, events_config: EventsConfig, target: str) -> list[Silence]:
    """End now every active silence of ``target``: an event's (of the event and of each of its
    rules), or a rule's own (by its id); the ones ended."""
    now = settings.now()
    with session(settings, "unsilence") as client:
        store = Silences(client, settings.warehouse)
        ended = [
            silence
            for silence in store.all()
            if silence.active(now) and (silence.event_name == target or silence.rule_id == target)
        ]
        if not ended:
            silence_target(events_config, target)
        for silence in ended:
            store.end_early(silence, now)
    return ended


# dbt_project.yml's drop_settle_minutes: the minutes a window waits for its events before a drop
DROP_SETTLE_MINUTES = 2


@dataclasses.dataclass
class Status:
    generated_at: datetime
    warehouse: str
    runs: list[RunRecord]
    rules: list[dict[str, Any]]
    open_incidents: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    silences: list[Silence]
    newest_processed_at: datetime | None
    last_collect_ok_at: datetime | None

    @property
    def lag(self) -> timedelta | None:
        return self.generated_at - self.newest_processed_at if self.newest_processed_at else None

    @property
    def drops_held_from(self) -> datetime | None:
        """The first minute no drop is judged on yet because the data collected stops short of it
        (macros/drops_judged_before.sql: the newest data's minute less the settle time), when that
        is earlier than the settle time alone holds; None when the data is current."""
        if self.newest_processed_at is None or self.lag is None or self.lag < timedelta(minutes=1):
            return None
        return utc(self.newest_processed_at).replace(second=0, microsecond=0) - timedelta(minutes=DROP_SETTLE_MINUTES)

    def document(self) -> dict[str, Any]:
        """``status --json``: times ISO 8601 UTC."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return utc(value).isoformat().replace("+00:00", "Z")
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        last = self.runs[0] if self.runs else None
        return plain({
            "generated_at": self.generated_at,
            "warehouse": self.warehouse,
            "collection": {
                "newest_processed_at": self.newest_processed_at,
                "lag_seconds": int(self.lag.total_seconds()) if self.lag is not None else None,
                "last_collect_ok_at": self.last_collect_ok_at,
                "drops_held_from": self.drops_held_from,
            },
            "health": {"healthy": last.healthy, "summary": last.health} if last else None,
            "runs": [run.row() for run in self.runs],
            "rules": self.rules,
            "open_incidents": self.open_incidents,
            "notifications": self.notifications,
            "silences": [dataclasses.asdict(silence) for silence in self.silences],
        })  # fmt: skip


def read_status(settings: Settings, events_config: EventsConfig) -> Status:
    now = settings.now()
    with session(settings, "status") as client:
        history = RunHistory(client, settings.warehouse).recent()
        ledger = Ledger(client, settings.warehouse).all()
        silences = Silences(client, settings.warehouse).all()
        active = active_silences(silences, now)
        counts = _table(client, "int_event_counts_per_minute")
        since = sql_time(now - timedelta(hours=24), settings.warehouse)
        # a warehouse not yet detected by a release with rule ids names each rule by its event
        key = _rule_column(client, counts)
        volumes = _rows(client, f"select {key}, sum(event_count) from {counts} where minute_at > %s group by 1", since)
        learned = _table(client, "baseline_learning")
        learning = {
            row[0] for row in _rows(client, f"select {_rule_column(client, learned)} from {learned} where is_learning")
        }
        found = _table(client, "incidents")
        incidents = _rows(
            client,
            f"select {_rule_column(client, found)}, event_name, kind, first_anomalous_minute, last_anomalous_minute, "
            f"peak_count, alert_channel from {found} where status = 'open' order by first_anomalous_minute",
        )
        recorded = [run.newest_processed_at for run in history if run.newest_processed_at is not None]
        names = list(events_config.enabled_names)
        newest = max(recorded) if recorded else (newest_in_raw(client, settings, names, now) if names else None)
    volume = {str(rule_id): int(count or 0) for rule_id, count in volumes}
    enabled = {rule.rule_id for rule in events_config.enabled}
    open_incidents = [
        {"rule_id": rule_id, "event_name": name, "kind": kind or "spike", "first_anomalous_minute": utc(first),
         "last_anomalous_minute": utc(last), "peak_count": int(peak), "alert_channel": channel}
        for rule_id, name, kind, first, last, peak, channel in incidents
        if rule_id in enabled
    ]  # fmt: skip
    firing = {incident["rule_id"] for incident in open_incidents}
    rules = []
    for rule in events_config.events:
        silence = covering(active, rule.name, rule.rule_id)
        if not rule.enabled:
            state = "disabled"
        elif silence is not None:
            state = "silenced"
        elif rule.rule_id in firing:
            state = "firing"
        elif rule.rule_id in learning:
            state = "learning"
        else:
            state = "ok"
        rules.append({
            "rule_id": rule.rule_id, "event_name": rule.name, "state": state, "detector": rule.detector,
            "alert_channel": rule.alert_channel, "events_24h": volume.get(rule.rule_id, 0),
            "silenced_until": silence.end if silence is not None else None,
        })  # fmt: skip
    undelivered = [
        {"notification_id": item.notification_id, "rule_id": item.rule_id, "event_name": item.event_name,
         "kind": item.kind,
         "status": "held" if (item.last_error or "").startswith("held:") else item.status, "channel": item.channel,
         "attempts": item.attempts, "last_error": item.last_error, "created_at": utc(item.created_at)}
        for item in ledger.values()
        if item.status in UNDELIVERED
    ]  # fmt: skip
    return Status(
        generated_at=now, warehouse=settings.warehouse, runs=history[:RECENT_RUNS], rules=rules,
        open_incidents=open_incidents, notifications=sorted(undelivered, key=lambda item: item["created_at"] or now),
        silences=sorted(active.values(), key=lambda silence: silence.end),
        newest_processed_at=newest,
        last_collect_ok_at=next((run.ended_at for run in history if run.collect_result == "ok"), None),
    )  # fmt: skip


def _table(client: Any, name: str) -> str:
    return str(client.make_qualified_table_name(name))


def _rule_column(client: Any, table: str) -> str:
    """``rule_id``, or ``event_name`` in a table built before rule ids (or not built yet)."""
    try:
        present = {column.lower() for column in columns_of(client, table)}
    except undefined_relation_errors():
        return "event_name"
    return "rule_id" if "rule_id" in present else "event_name"


def _rows(client: Any, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    """The rows, or none when a table is not there yet (nothing collected or detected)."""
    try:
        return [tuple(row) for row in client.execute_sql(sql, *parameters) or []]
    except undefined_relation_errors():
        return []


def ago(value: datetime | None, now: datetime) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC ({minutes(now - value)} ago)"
