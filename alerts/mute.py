"""Stage 2 of the alert step, its silencing half: the silences in force this run, including those
asked for in Slack with a mute reaction (``:no_bell:``) on an alert or a digest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from mixpanel_alerts.core.events_config import rule_label
from mixpanel_alerts.core.times import utc

from .health import is_pipeline
from .ledger import Notification
from .silences import REACTION_LOOKBACK, Silence, reaction_silence
from .slack import BotSender, CannotCheckError, DeliveryError

logger = logging.getLogger("mixpanel_alerts")


def reaction_silences(
    sender: BotSender,
    known: dict[str, Notification],
    silences: list[Silence],
    moment: datetime,
    say: Callable[[str], None],
) -> list[Silence]:
    """Silences asked for by a mute reaction (:no_bell:) on an alert or a digest sent within
    REACTION_LOOKBACK: read with ``reactions.get`` (scope ``reactions:read``)."""
    made = {silence.silence_id for silence in silences}
    # the rules an alert or a digest was about: a reaction mutes those rules
    members: dict[str, list[tuple[str, str]]] = {}
    for item in known.values():
        if item.digest_id:
            members.setdefault(item.digest_id, []).append((item.event_name, item.rule_id or item.event_name))
    added: list[Silence] = []
    for item in known.values():
        if item.kind not in ("firing", "digest") or item.status != "sent" or not item.slack_ts or is_pipeline(item):
            continue
        if item.digest_id or not item.sent_at or utc(item.sent_at) < moment - REACTION_LOOKBACK:
            continue
        if f"reaction:{item.slack_ts}" in made or not item.slack_channel:
            continue
        try:
            message = sender.reactions(item.slack_channel, item.slack_ts)
        except CannotCheckError as exc:
            say(f"alerts: cannot read the reactions on alerts ({exc}); muting with :no_bell: needs reactions:read")
            return added
        except DeliveryError as exc:
            logger.warning("could not read the reactions on an alert: %s", exc)
            continue
        own = [(item.event_name, item.rule_id or item.event_name)]
        rules = members.get(item.notification_id, []) if item.kind == "digest" else own
        for index, (event_name, rule_id) in enumerate(sorted(set(rules))):
            silence = reaction_silence(message, event_name=event_name, channel_name=item.channel, ts=item.slack_ts,
                                       now=moment, rule_id=rule_id)  # fmt: skip
            if silence is None:
                break
            if index:
                silence.silence_id += f":{rule_id}"
            added.append(silence)
            made.add(silence.silence_id)
            say(f"alerts: {rule_label(event_name, rule_id)} silenced until {silence.end:%Y-%m-%d %H:%M} UTC "
                f"({silence.reason}, by {silence.created_by})")  # fmt: skip
    return added
