"""The alert step's state in the warehouse: the ledger (``alert_notifications``) and the silences
(``alert_silences``), read once a run and written as each decision is made.

A dry run reads the same state and writes nothing: ``DryRunState`` is the one place that knows it,
so no stage takes a ``dry_run`` flag.
"""

from __future__ import annotations

from typing import Any

from .ledger import Ledger, Notification
from .silences import Silence, Silences


class AlertState:
    def __init__(self, client: Any, warehouse: str) -> None:
        self.ledger = Ledger(client, warehouse)
        self.silence_store = Silences(client, warehouse)

    def ensure(self) -> None:
        """Create the tables (or add the columns an earlier version did not have)."""
        self.ledger.ensure()
        self.silence_store.ensure()

    def notifications(self) -> dict[str, Notification]:
        return self.ledger.all()

    def silences(self) -> list[Silence]:
        return self.silence_store.all()

    def insert(self, notification: Notification) -> None:
        self.ledger.insert(notification)

    def update(self, notification: Notification) -> None:
        self.ledger.update(notification)

    def add_silence(self, silence: Silence) -> None:
        self.silence_store.add(silence)


class DryRunState(AlertState):
    """Reads what a run would read; records nothing."""

    def ensure(self) -> None:
        pass

    def insert(self, notification: Notification) -> None:
        pass

    def update(self, notification: Notification) -> None:
        pass

    def add_silence(self, silence: Silence) -> None:
        pass
