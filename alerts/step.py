"""The alert step: new incidents in the marts become Slack messages, each sent once.

Like Alertmanager's notify pipeline, it runs in stages, each a module with plain inputs and
outputs, tested on its own:

1. due (``plan.py``, reading with ``reads.py`` and ``state.py``): from the incidents and the
   ledger, what to record and what to send now;
2. silence and inhibit (``mute.py``, ``health.py``): the silences in force, mute reactions read
   from Slack, drop alerts held while the pipeline is unhealthy;
3. group (``group.py``): many new alerts for one destination become one digest;
4. deliver (``deliver.py``): each message recorded before it is posted and marked once Slack
   accepts it; the pipeline's own alert and its resolved notice;
5. record: the ``AlertSummary`` this returns, which the run writes to ``pipeline_runs``.

The run chooses the output (``deliver.SlackOutput`` or ``deliver.DryRunOutput``) and judges the
pipeline's health; this module neither prints nor owns the run's record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mixpanel_alerts.core.config import Settings

from . import clock
from .deliver import AlertSummary, Delivery, Output, Renderer
from .group import group_digests
from .health import PipelineHealth, hold_drops, is_pipeline, pipeline_notice
from .mute import reaction_silences
from .plan import plan
from .reads import Warehouse
from .silences import active_silences
from .slack import BotSender

__all__ = ["AlertRequest", "AlertSummary", "run_alerts"]


@dataclasses.dataclass
class AlertRequest:
    """What the run hands the alert step.

    ``rules``: each configured rule's event and whether it is enabled; ``now``: the moment the step
    runs as of, and ``clock`` the time as it goes (the ledger's timestamps); ``health``: the run's
    verdict on the pipeline (None: not judged); ``incidents_current``: False after a failed collect,
    when the incidents are not current and only the pipeline's alert is handled; ``note``: where
    the step says what the user should know."""

    settings: Settings
    rules: Mapping[str, bool]
    descriptions: Mapping[str, str]
    ops_channel: str
    now: datetime
    clock: Callable[[], datetime]
    health: PipelineHealth | None = None
    incidents_current: bool = True
    note: Callable[[str], None] = lambda text: None


def run_alerts(client: Any, request: AlertRequest, output: Output) -> AlertSummary:
    """The stages, in one warehouse session (``client``: the pipeline's dlt SQL client), speaking
    in DETECTION_TIMEZONE's clock (clock.py)."""
    with clock.speaking_in(request.settings.detection_timezone):
        return _run_alerts(client, request, output)


def _run_alerts(client: Any, request: AlertRequest, output: Output) -> AlertSummary:
    settings, moment, summary = request.settings, request.now, AlertSummary()
    state = output.state(client, settings.warehouse)
    sender = output.sender
    state.ensure()
    known = state.notifications()
    for notification in known.values():
        if notification.slack_channel and notification.slack_channel not in ("webhook", "terminal"):
            sender.remember(notification.channel, notification.slack_channel)

    # 2a. silences: the stored ones, and those asked for with a mute reaction
    silences = state.silences()
    if isinstance(sender, BotSender):
        for silence in reaction_silences(sender, known, silences, moment, request.note):
            state.add_silence(silence)
            silences.append(silence)
    active = active_silences(silences, moment)

    delivery = Delivery(sender, state, summary, request.clock, request.note)
    if request.incidents_current:
        # 1. due
        warehouse = Warehouse(client, settings)
        alerts = {key: item for key, item in known.items() if item.kind in ("firing", "resolved")}
        decided = plan(
            warehouse.incidents(), {key: item for key, item in alerts.items() if not is_pipeline(item)}, now=moment,
            lookback=timedelta(minutes=settings.alert_lookback_minutes), silences=active, rules=request.rules,
        )  # fmt: skip
        summary.skipped, summary.withdrawn, summary.silenced = decided.skipped, decided.withdrawn, decided.silenced
        for notification in decided.inserts:
            state.insert(notification)
        for notification in decided.updates:
            state.update(notification)
        # 2b. inhibit
        due, summary.held = decided.due, 0
        if request.health is not None:
            due, summary.held = hold_drops(due, request.health, state, moment)
        # 3. group
        singles, digests = group_digests(due, known, sender, settings.alert_digest_threshold, state, moment)
        # 4. deliver
        for digest, members in digests:
            delivery.deliver_digest(digest, members)
        descriptions = dict(request.descriptions)
        for item in singles:
            if item.after is not None and item.after.status != "sent":
                continue  # a resolved notice follows its alert
            if item.new:
                state.insert(item.notification)
            delivery.deliver(item, Renderer(warehouse, settings, item, descriptions, sender))
    if request.health is not None:
        ops = dataclasses.replace(delivery, sender=output.ops_sender)
        pipeline_notice(
            known, request.health, channel=request.ops_channel, state=state, moment=moment, deliver=ops.deliver
        )
    return summary
