"""A local HTTP server speaking Slack's incoming-webhook and Web API (chat.postMessage) protocols,
with injectable faults: 429 with Retry-After, 5xx, dropped connections, Slack error codes."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BOT_TOKEN = "xoxb-test-token-Hq83Jd"
WEBHOOK_PATH = "/services/T000/B000/XXXX"


class SlackFake:
    """Accepted messages land in ``messages``; every request in ``requests``."""

    def __init__(self, channels: dict[str, str] | None = None) -> None:
        # channel name -> id
        self.channels = channels or {"#alerts-errors": "C0ERRORS", "#alerts-checkout": "C0CHECKOUT"}
        self.faults: deque[str] = deque()
        self.messages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (path, outcome)
        self._ts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                fake.handle(self, raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, *faults: str) -> None:
        self.faults.extend(faults)

    def handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        path = handler.path
        fault = self.faults.popleft() if self.faults else None
        if fault == "drop":
            self.requests.append((path, "drop"))
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.close_connection = True
            return
        if fault == "429":
            self.requests.append((path, "429"))
            self._reply(handler, 429, b"rate_limited", {"Retry-After": "1"})
            return
        if fault in ("500", "503"):
            self.requests.append((path, fault))
            self._reply(handler, int(fault), b"internal_error")
            return
        payload = _payload(handler.headers.get("Content-Type", ""), raw)
        if path.startswith("/api/"):
            self._api(handler, path[len("/api/") :], payload, fault)
        else:
            self._webhook(handler, path, payload, fault)

    def _webhook(self, handler: BaseHTTPRequestHandler, path: str, payload: dict[str, Any], fault: str | None) -> None:
        if path != WEBHOOK_PATH or fault == "no_service":
            self.requests.append((path, "no_service"))
            self._reply(handler, 404, b"no_service")
            return
        if "text" not in payload:
            self.requests.append((path, "no_text"))
            self._reply(handler, 400, b"no_text")
            return
        self.requests.append((path, "ok"))
        self.messages.append({"via": "webhook", "channel": None, **payload})
        self._reply(handler, 200, b"ok")

    def _api(self, handler: BaseHTTPRequestHandler, method: str, payload: dict[str, Any], fault: str | None) -> None:
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        if token != BOT_TOKEN or fault == "invalid_auth":
            self.requests.append((method, "invalid_auth"))
            self._json(handler, {"ok": False, "error": "invalid_auth"})
            return
        if method != "chat.postMessage":
            self.requests.append((method, "unknown_method"))
            self._json(handler, {"ok": False, "error": "unknown_method"}, status=404)
            return
        channel = str(payload.get("channel", ""))
        channel_id = self.channels.get(channel, channel if channel in self.channels.values() else None)
        if channel_id is None or fault == "channel_not_found":
            self.requests.append((method, "channel_not_found"))
            self._json(handler, {"ok": False, "error": "channel_not_found"})
            return
        self._ts += 1
        ts = f"1700000000.{self._ts:06d}"
        self.requests.append((method, "ok"))
        self.messages.append({"via": "bot", **payload, "channel": channel_id, "ts": ts})
        self._json(handler, {"ok": True, "channel": channel_id, "ts": ts, "message": {"text": payload.get("text")}})

    def _json(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], status: int = 200) -> None:
        self._reply(handler, status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _payload(content_type: str, raw: bytes) -> dict[str, Any]:
    if "json" in content_type:
        return dict(json.loads(raw or b"{}"))
    form = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
    if "blocks" in form:
        form["blocks"] = json.loads(form["blocks"])
    return form
