"""A Mixpanel Raw Event Export simulator: the protocol server (``server``) and realistic traffic
(``traffic``). The demo, the tests and the benchmark use it; ``python -m mixpanel_alerts.simulator``
runs it on its own."""

from .server import EXPORT_PATH, FAULTS, TERMINATED_EARLY_LINE, ExportSimulator, RequestRecord, _gzip_cached, _Handler
from .traffic import GZIP_MIN_BYTES, SimEvent, generate_traffic, make_event

__all__ = [
    "EXPORT_PATH",
    "FAULTS",
    "GZIP_MIN_BYTES",
    "TERMINATED_EARLY_LINE",
    "ExportSimulator",
    "RequestRecord",
    "SimEvent",
    "_Handler",
    "_gzip_cached",
    "generate_traffic",
    "make_event",
]
