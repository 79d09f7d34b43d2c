"""Run output: every line carries a timestamp; ``LOG_FORMAT=json`` writes one JSON object per line
(``time``, ``severity``, ``message``), the structured form Cloud Logging reads from a job's stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_format = {"value": "text"}
_debug = {"value": False}


def set_debug(value: bool) -> None:
    """``--debug`` or LOG_LEVEL=debug: tracebacks with errors, and the libraries' own logs."""
    _debug["value"] = value
    logging.getLogger("mixpanel_alerts").setLevel(logging.DEBUG if value else logging.NOTSET)


def is_debug() -> bool:
    return _debug["value"]


def set_format(value: str) -> None:
    _format["value"] = value
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if value == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers = [handler]


def is_json() -> bool:
    return _format["value"] == "json"


def timestamp(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_line(message: str, severity: str = "INFO", **fields: Any) -> str:
    return json.dumps(
        {"time": timestamp(), "severity": severity, "message": message, **fields}, ensure_ascii=False, default=str
    )


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return f"{timestamp(moment)} {record.levelname} {record.name}: {record.getMessage()}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        document = {"time": timestamp(moment), "severity": record.levelname, "message": record.getMessage(),
                    "logger": record.name}  # fmt: skip
        return json.dumps(document, ensure_ascii=False, default=str)
