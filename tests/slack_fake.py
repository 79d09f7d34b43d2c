"""A local HTTP server speaking Slack's incoming-webhook protocol and Web API (chat.postMessage,
conversations.history, conversations.replies, auth.test, and the external file upload:
files.getUploadURLExternal, the POST of the bytes to its upload URL, files.completeUploadExternal),
with injectable faults.

Uploaded files land in ``files`` (id -> ``{"filename", "length", "alt_txt", "bytes", "title",
"complete"}``); a message whose image block names a file (``slack_file.id``) that is not a completed
upload is refused with ``invalid_blocks``, as Slack refuses it.

Faults (``inject(...)``, one consumed per request, in order):

- taken by any request, which is then not processed: ``"drop"`` (connection reset, nothing recorded),
  ``"429"`` (with Retry-After: 1), ``"429:SECONDS"`` (with Retry-After: SECONDS), ``"429-no-retry-after"``,
  ``"500"``, ``"503"``, ``"503:SECONDS"`` (a 503 with Retry-After: SECONDS);
- Slack error answers: ``"no_service"`` (webhook), ``"invalid_auth"``, ``"channel_not_found"`` (Web API),
  ``"invalid_blocks"`` and ``"not_allowed_token_type"`` (any Web API method but auth.test);
- the message is posted but the client may not learn it (only chat.postMessage and the webhook take these
  from the shared queue; other requests leave them queued): ``"stall:SECONDS"`` (processed after SECONDS,
  then answered normally), ``"process-then-drop"`` (processed, connection reset without a response),
  ``"process-then-500"`` (processed, answered HTTP 500), ``"hold"`` (processed, the answer is held until
  ``release()`` or ``stop()``; ``held`` is set meanwhile).

``inject(..., method="conversations.history")`` queues faults for one method only (``"webhook"`` for the
webhook, ``"upload"`` for the POST to an upload URL); those are taken before the shared queue, and
any fault applies to that method.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BOT_TOKEN = "xoxb-test-token-Hq83Jd"
WEBHOOK_PATH = "/services/T000/B000/XXXX"

BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0BOT"
TEAM_ID = "T0"
WEBHOOK_BOT_ID = "B0HOOK"
DEFAULT_SCOPES = frozenset(
    {
        "chat:write",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
        "files:write",
        "reactions:read",
    }
)
# the scope each Web API method needs (auth.test needs none)
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "conversations.list": "channels:read",
    "reactions.get": "reactions:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
# chat.postMessage takes a channel name or id; these take only an id, as Slack's do
ID_ONLY_METHODS = ("conversations.history", "conversations.replies", "reactions.get")
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 1000
UPLOAD_PATH = "/upload/"
# faults answered as Slack's error of that name by a Web API method
API_ERROR_FAULTS = ("invalid_blocks", "not_allowed_token_type")
# faults that let the request be processed and spoil only its answer
DELIVERY_FAULTS = ("process-then-drop", "process-then-500", "hold")


def is_delivery_fault(fault: str) -> bool:
    return fault in DELIVERY_FAULTS or fault.startswith("stall:")


@dataclass
class _Reply:
    status: int
    body: bytes
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)


class SlackFake:
    """Accepted messages land in ``messages`` (oldest first); every request in ``requests`` as
    ``(path or method, outcome)``."""

    def __init__(self, channels: dict[str, str] | None = None) -> None:
        # channel name -> id
        self.channels = channels or {"#alerts-errors": "C0ERRORS", "#alerts-checkout": "C0CHECKOUT"}
        self.faults: deque[str] = deque()
        self.method_faults: dict[str, deque[str]] = {}
        self.messages: list[dict[str, Any]] = []
        # uploaded files: id -> {"filename", "length", "alt_txt", "bytes", "title", "complete"}
        self.files: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (path, outcome)
        # every request as (time.monotonic(), path, outcome): how long a client waited between them
        self.timeline: list[tuple[float, str, str]] = []
        self.scopes: set[str] = set(DEFAULT_SCOPES)
        # the channel id the webhook posts to; None keeps webhook messages out of every channel's history
        self.webhook_channel: str | None = None
        # set while a "hold" fault keeps an answer back; one entry per request held so far
        self.held = threading.Event()
        self.held_requests: list[str] = []
        self._gate = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.RLock()
        self._last_ts = 0  # microseconds since the epoch of the newest message
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                fake.handle(self, raw)

            def do_GET(self) -> None:
                fake.handle(self, b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

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
        self._stopped.set()
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def inject(self, *faults: str, method: str | None = None) -> None:
        """Queue faults for the next requests, or with ``method`` for the next calls of that Web API
        method (``"webhook"`` for the webhook)."""
        with self._lock:
            if method is None:
                self.faults.extend(faults)
            else:
                self.method_faults.setdefault(method, deque()).extend(faults)

    def release(self) -> None:
        """Let every answer held by a "hold" fault go out."""
        with self._lock:
            gate, self._gate = self._gate, threading.Event()
            self.held.clear()
        gate.set()

    # ------------------------------------------------------------------ requests

    def handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        is_api = path.startswith("/api/")
        is_upload = path.startswith(UPLOAD_PATH)
        target = path[len("/api/") :] if is_api else "upload" if is_upload else "webhook"
        fault = self._take_fault(target)
        if fault == "drop":
            self._record(path, "drop")
            self._abort(handler)
            return
        if fault is not None and (fault == "429" or fault.startswith(("429:", "429-"))):
            self._record(path, "429")
            retry_after = fault.removeprefix("429:") if fault.startswith("429:") else "1"
            headers = {} if fault == "429-no-retry-after" else {"Retry-After": retry_after}
            body = b"rate_limited" if target == "webhook" else b'{"ok": false, "error": "ratelimited"}'
            self._reply(handler, 429, body, {**headers, "Content-Type": "application/json"} if is_api else headers)
            return
        if fault is not None and fault.split(":")[0] in ("500", "503"):
            status, _, retry_after = fault.partition(":")
            self._record(path, status)
            self._reply(handler, int(status), b"internal_error", {"Retry-After": retry_after} if retry_after else None)
            return
        delivery = fault if fault is not None and is_delivery_fault(fault) else None
        if delivery is not None and delivery.startswith("stall:"):
            seconds = float(delivery.removeprefix("stall:"))
            if self._stopped.wait(seconds):  # stopped while stalling: never processed
                self._abort(handler)
                return
        try:
            payload = {} if is_upload else _payload(handler.headers.get("Content-Type", ""), raw)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            payload = {**query, **payload}
        except ValueError:
            payload = None
        with self._lock:
            if is_api:
                reply = self._api(handler, target, payload, fault)
            elif is_upload:  # the file's bytes, whatever the content type
                reply = self._upload(path.removeprefix(UPLOAD_PATH), raw)
            else:
                reply = self._webhook(handler, path, payload, fault)
            name = target if is_api else path
            self._record(name, delivery or reply.outcome)
            gate = self._gate
            if delivery == "hold":
                self.held_requests.append(name)
                self.held.set()
        if delivery is not None:
            handler.close_connection = True  # the client may be gone: read nothing more from it
        if delivery == "process-then-drop":
            self._abort(handler)
            return
        if delivery == "process-then-500":
            self._reply(handler, 500, b"internal_error")
            return
        if delivery == "hold":
            while not gate.wait(0.05) and not self._stopped.is_set():
                pass
        self._reply(handler, reply.status, reply.body, reply.headers)

    def _take_fault(self, target: str) -> str | None:
        with self._lock:
            own = self.method_faults.get(target)
            if own:
                return own.popleft()
            if not self.faults:
                return None
            if is_delivery_fault(self.faults[0]) and target not in ("chat.postMessage", "webhook"):
                return None  # a fault meant for a post waits for the next post
            return self.faults.popleft()

    def _record(self, name: str, outcome: str) -> None:
        with self._lock:
            self.requests.append((name, outcome))
            self.timeline.append((time.monotonic(), name, outcome))

    def _next_ts(self) -> str:
        self._last_ts = max(time.time_ns() // 1000, self._last_ts + 1)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _channel_id(self, channel: Any) -> str | None:
        channel = str(channel or "")
        return self.channels.get(channel, channel if channel in self.channels.values() else None)

    def _webhook(
        self, handler: BaseHTTPRequestHandler, path: str, payload: dict[str, Any] | None, fault: str | None
    ) -> _Reply:
        if path != WEBHOOK_PATH or fault == "no_service":
            return _Reply(404, b"no_service", "no_service")
        if payload is None:
            return _Reply(400, b"invalid_payload", "invalid_payload")
        if "text" not in payload:
            return _Reply(400, b"no_text", "no_text")
        self.messages.append({"via": "webhook", "channel": self.webhook_channel, **payload, "ts": self._next_ts()})
        return _Reply(200, b"ok", "ok")

    def _api(
        self, handler: BaseHTTPRequestHandler, method: str, payload: dict[str, Any] | None, fault: str | None
    ) -> _Reply:
        if payload is None:
            return _json({"ok": False, "error": "invalid_form_data"}, "invalid_form_data")
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ") or str(payload.pop("token", ""))
        payload.pop("token", None)
        if token != BOT_TOKEN or fault == "invalid_auth":
            return _json({"ok": False, "error": "invalid_auth"}, "invalid_auth")
        scopes = {"x-oauth-scopes": ",".join(sorted(self.scopes))}
        if method == "auth.test":
            return _json(self._auth_test(), "ok", headers=scopes)
        if method not in METHOD_SCOPES:
            return _json({"ok": False, "error": "unknown_method"}, "unknown_method", status=404)
        needed = METHOD_SCOPES[method]
        if needed not in self.scopes:
            body = {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(sorted(self.scopes))}
            return _json(body, "missing_scope", headers={**scopes, "x-accepted-oauth-scopes": needed})
        if fault in API_ERROR_FAULTS:
            return _json({"ok": False, "error": fault}, fault, headers=scopes)
        if method == "conversations.list":
            return _json(self._list(payload), "ok", headers=scopes)
        if method.startswith("files."):
            body = self._upload_url(payload) if method == "files.getUploadURLExternal" else self._complete(payload)
            return _json(body, "ok" if body["ok"] else str(body["error"]), headers=scopes)
        channel_id = self._channel_id(payload.get("channel"))
        if method in ID_ONLY_METHODS and channel_id != str(payload.get("channel")):
            channel_id = None
        if channel_id is None or fault == "channel_not_found":
            return _json({"ok": False, "error": "channel_not_found"}, "channel_not_found", headers=scopes)
        if method == "chat.postMessage":
            body = self._post_message(channel_id, payload)
        elif method == "conversations.history":
            body = self._history(channel_id, payload)
        elif method == "reactions.get":
            body = self._reactions(channel_id, payload)
        else:
            body = self._replies(channel_id, payload)
        return _json(body, "ok" if body["ok"] else str(body["error"]), headers=scopes)

    def _auth_test(self) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "mixpanel-alerts",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    # ------------------------------------------------------------------ chat.postMessage

    def _post_message(self, channel_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not any(payload.get(key) for key in ("text", "blocks", "attachments", "markdown_text")):
            return {"ok": False, "error": "no_text"}
        metadata = payload.get("metadata")
        if metadata is not None and not _valid_metadata(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        errors = self._image_errors(payload.get("blocks"))
        if errors:
            return {"ok": False, "error": "invalid_blocks", "errors": errors}
        message: dict[str, Any] = {"via": "bot", **payload, "channel": channel_id}
        if payload.get("thread_ts"):
            parent = self._find(channel_id, str(payload["thread_ts"]))
            # a reply's ts names its thread: Slack threads one level deep
            message["thread_ts"] = parent.get("thread_ts", parent["ts"]) if parent else str(payload["thread_ts"])
            message["reply_broadcast"] = _flag(payload.get("reply_broadcast"))
        else:
            message.pop("thread_ts", None)
            message.pop("reply_broadcast", None)
        message["ts"] = self._next_ts()
        self.messages.append(message)
        return {"ok": True, "channel": channel_id, "ts": message["ts"], "message": self._view(message, True, False)}

    def _image_errors(self, blocks: Any) -> list[str]:
        """What Slack says of image blocks it cannot show: an unknown or unfinished slack_file, no
        alt_text, no image at all."""
        errors = []
        for index, block in enumerate(blocks if isinstance(blocks, list) else []):
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            pointer = f"[json-pointer:/blocks/{index}"
            slack_file = block.get("slack_file")
            if isinstance(slack_file, dict):
                uploaded = self.files.get(str(slack_file.get("id")))
                if uploaded is None or not uploaded["complete"]:
                    errors.append(f"invalid slack file {pointer}/slack_file]")
            elif not block.get("image_url"):
                errors.append(f"must provide either image_url or slack_file {pointer}]")
            alt_text = block.get("alt_text")
            if not isinstance(alt_text, str) or not 1 <= len(alt_text) <= 2000:
                errors.append(f"alt_text must be 1 to 2000 characters {pointer}/alt_text]")
        return errors

    # ------------------------------------------------------------------ files (external upload)

    def _upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.getUploadURLExternal: a file id and where to POST the bytes."""
        try:
            length = int(str(args.get("length")))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not args.get("filename") or length < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F0{len(self.files) + 1:09d}"
        self.files[file_id] = {
            "filename": str(args["filename"]),
            "length": length,
            "alt_txt": args.get("alt_txt"),
            "bytes": None,
            "title": None,
            "complete": False,
        }
        return {"ok": True, "upload_url": f"{self.url}{UPLOAD_PATH}{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, raw: bytes) -> _Reply:
        """The POST to an upload URL: the bytes of a file not yet completed."""
        uploaded = self.files.get(file_id)
        if uploaded is None or uploaded["complete"]:
            return _Reply(404, b"not_found", "not_found")
        uploaded["bytes"] = raw
        return _Reply(200, f"OK - {len(raw)}".encode(), "ok")

    def _complete(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.completeUploadExternal: every file named must have its bytes; none is shared with a
        channel here (the fake keeps no file messages)."""
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
            return {"ok": False, "error": "invalid_arguments"}
        for named in files:
            uploaded = self.files.get(str(named.get("id")))
            if uploaded is None or uploaded["bytes"] is None:
                return {"ok": False, "error": "file_not_found"}
        completed = []
        for named in files:
            uploaded = self.files[str(named["id"])]
            uploaded.update(complete=True, title=named.get("title") or uploaded["filename"])
            completed.append({"id": str(named["id"]), "title": uploaded["title"]})
        return {"ok": True, "files": completed}

    # ------------------------------------------------------------------ conversations.*

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.list: the channels the bot can see, ``limit`` at a time (cursor = offset)."""
        limit = min(int(args.get("limit") or HISTORY_DEFAULT_LIMIT), HISTORY_MAX_LIMIT)
        start = int(str(args.get("cursor") or "0"))
        channels = [
            {"id": channel_id, "name": name.removeprefix("#"), "is_channel": True, "is_member": True}
            for name, channel_id in sorted(self.channels.items(), key=lambda item: item[1])
        ]
        page = channels[start : start + limit]
        following = start + limit if start + limit < len(channels) else None
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": str(following or "")}}

    def _history(self, channel_id: str, args: dict[str, Any]) -> dict[str, Any]:
        in_channel = [
            message
            for message in self.messages
            if message["channel"] == channel_id and (not message.get("thread_ts") or message.get("reply_broadcast"))
        ]
        return self._page(in_channel, args, newest_first=True, in_history=True)

    def _replies(self, channel_id: str, args: dict[str, Any]) -> dict[str, Any]:
        found = self._find(channel_id, str(args.get("ts") or ""))
        if found is None:
            return {"ok": False, "error": "thread_not_found"}
        root = str(found.get("thread_ts") or found["ts"])
        thread = [
            message
            for message in self.messages
            if message["channel"] == channel_id and root in (message["ts"], message.get("thread_ts"))
        ]
        return self._page(thread, args, newest_first=False, in_history=False)

    def _page(
        self, candidates: list[dict[str, Any]], args: dict[str, Any], *, newest_first: bool, in_history: bool
    ) -> dict[str, Any]:
        inclusive = _flag(args.get("inclusive"))
        try:
            oldest = Decimal(str(args.get("oldest") or 0))
        except InvalidOperation:
            return {"ok": False, "error": "invalid_ts_oldest"}
        try:
            latest = Decimal(str(args["latest"])) if args.get("latest") else None
        except InvalidOperation:
            return {"ok": False, "error": "invalid_ts_latest"}
        try:
            limit = int(args.get("limit") or HISTORY_DEFAULT_LIMIT)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        limit = min(max(limit, 1), HISTORY_MAX_LIMIT)
        cursor: Decimal | None = None
        if args.get("cursor"):
            try:
                decoded = base64.b64decode(str(args["cursor"]), validate=True).decode()
                cursor = Decimal(decoded.removeprefix("next_ts:"))
            except (binascii.Error, UnicodeDecodeError, InvalidOperation):
                return {"ok": False, "error": "invalid_cursor"}

        def keep(message: dict[str, Any]) -> bool:
            ts = Decimal(message["ts"])
            after_oldest = ts >= oldest if inclusive else ts > oldest
            before_latest = latest is None or (ts <= latest if inclusive else ts < latest)
            if cursor is not None and (ts > cursor if newest_first else ts < cursor):
                return False
            return after_oldest and before_latest

        selected = sorted(
            (message for message in candidates if keep(message)),
            key=lambda message: Decimal(message["ts"]),
            reverse=newest_first,
        )
        page, rest = selected[:limit], selected[limit:]
        include_metadata = _flag(args.get("include_all_metadata"))
        next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode() if rest else ""
        return {
            "ok": True,
            "messages": [self._view(message, include_metadata, in_history) for message in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def react(self, channel_id: str, ts: str, name: str, user: str = "U0PERSON") -> None:
        """Someone adds the reaction ``name`` (without colons) to the message at ``ts``."""
        with self._lock:
            message = self._find(channel_id, ts)
            if message is None:
                raise KeyError(f"no message {ts} in {channel_id}")
            reactions = message.setdefault("reactions", [])
            entry = next((item for item in reactions if item["name"] == name), None)
            if entry is None:
                entry = {"name": name, "users": [], "count": 0}
                reactions.append(entry)
            if user not in entry["users"]:
                entry["users"].append(user)
                entry["count"] += 1

    def _reactions(self, channel_id: str, args: dict[str, Any]) -> dict[str, Any]:
        """``reactions.get`` of a message (``channel`` and ``timestamp``), as Slack answers it."""
        message = self._find(channel_id, str(args.get("timestamp") or ""))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        view = {"type": "message", "ts": message["ts"], "text": message.get("text", "")}
        if message.get("reactions"):
            view["reactions"] = [dict(item, users=list(item["users"])) for item in message["reactions"]]
        return {"ok": True, "type": "message", "channel": channel_id, "message": view}

    def _find(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages if m["channel"] == channel_id and m["ts"] == ts), None)

    def _view(self, message: dict[str, Any], include_metadata: bool, in_history: bool) -> dict[str, Any]:
        """A recorded message as Slack shows it in conversations.history / replies."""
        view: dict[str, Any] = {"type": "message", "ts": message["ts"], "text": message.get("text", "")}
        if message["via"] == "bot":
            view.update(user=BOT_USER_ID, bot_id=BOT_ID, app_id=APP_ID, team=TEAM_ID)
        else:
            view.update(subtype="bot_message", bot_id=WEBHOOK_BOT_ID)
        for key in ("blocks", "attachments"):
            if message.get(key):
                view[key] = message[key]
        if message.get("thread_ts"):
            view["thread_ts"] = message["thread_ts"]
            view["parent_user_id"] = BOT_USER_ID
            if message.get("reply_broadcast"):
                view["subtype"] = "thread_broadcast"
        else:
            replies = [m for m in self.messages if m.get("thread_ts") == message["ts"]]
            if replies:
                view.update(
                    thread_ts=message["ts"],
                    reply_count=len(replies),
                    reply_users_count=1,
                    latest_reply=replies[-1]["ts"],
                    reply_users=[BOT_USER_ID],
                )
        if include_metadata and message.get("metadata") is not None:
            view["metadata"] = message["metadata"]
        return view

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _abort(handler: BaseHTTPRequestHandler) -> None:
        """Close the connection with a reset, answering nothing."""
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        handler.close_connection = True

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (a timeout, a killed process): the answer is lost
            handler.close_connection = True


def _json(body: dict[str, Any], outcome: str, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(body).encode(), outcome, {"Content-Type": "application/json", **(headers or {})})


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and bool(metadata["event_type"])
        and isinstance(metadata.get("event_payload"), dict)
    )


def _payload(content_type: str, raw: bytes) -> dict[str, Any]:
    """The arguments of a JSON or form body; raises ValueError on a malformed one."""
    if "json" in content_type:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        return body
    form: dict[str, Any] = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
    if set(form) == {"payload"}:  # an incoming webhook's form post: payload={json}
        return _payload("json", form["payload"].encode())
    for key in ("blocks", "attachments", "metadata"):
        if isinstance(form.get(key), str):
            try:
                form[key] = json.loads(form[key])
            except ValueError:
                if key != "metadata":
                    raise
                # left as the string: chat.postMessage answers invalid_metadata_format
    return form
