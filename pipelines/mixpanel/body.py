"""The export's body: streamed to a spool file, inflated (every gzip member, with or without the
header that says so), checked for a cut end, and quoted for an error message when it is not an
export. The client (``client.py``) calls it inside its response hook, so what it raises is retried
by dlt's policy like a 5xx."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from isal import isal_zlib
from requests import Response
from requests.exceptions import ConnectionError
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from .settings import TERMINATED_EARLY_MARKER

ProgressCallback = Callable[[str, dict[str, float]], None]
SPOOL_CHUNK_BYTES = 1 << 20
# an export line starts with "{"; a body that starts with these bytes is gzip, whatever its headers say
GZIP_MAGIC = b"\x1f\x8b"
# how much of an answer that is not an export its error quotes
SAMPLE_CHARS = 80


class IncompleteExportError(ConnectionError):
    """The body ended early (cut mid-line or ``export terminated early``); retried."""


class GzipMembers:
    """Inflates a gzip stream of one or more members with ISA-L (about twice as fast as zlib on
    large exports). RFC 1952 allows members back to back, and some servers and proxies send them:
    a decompressor stops at the end of the first member (the rest waits in its ``unused_data``), so
    each following member gets a decompressor of its own."""

    def __init__(self) -> None:
        self._inflater = _new_inflater()
        self._in_member = False  # bytes of a member that has not ended yet were read
        self._members = 0  # members that ended

    def inflate(self, data: bytes) -> bytes:
        pieces = []
        while data:
            if not self._in_member:
                data = data.lstrip(b"\x00")  # zero padding between or after members, as gzip(1) allows
                if not data:
                    break
                self._in_member = True
            pieces.append(self._inflater.decompress(data))
            if not self._inflater.eof:
                break
            self._in_member = False
            self._members += 1
            data = self._inflater.unused_data
            self._inflater = _new_inflater()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def finish(self) -> bytes:
        """What the last member still holds; IncompleteExportError if it did not end."""
        rest = self._inflater.flush()
        if (self._in_member or not self._members) and not self._inflater.eof:
            raise IncompleteExportError("the gzipped export body ended before its end")
        return rest


def _new_inflater() -> Any:
    return isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)


class BodyDecoder:
    """The export body as sent: gzip when ``Content-Encoding`` says so, or when its first bytes are
    gzip's magic number without it (an export line starts with ``{``, never with 0x1f); else as is."""

    def __init__(self, gzipped: bool) -> None:
        self._gzip: GzipMembers | None = GzipMembers() if gzipped else None
        self._undecided = not gzipped
        self._head = b""

    def decode(self, chunk: bytes) -> bytes:
        if self._undecided:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return b""
            self._undecided = False
            chunk, self._head = self._head, b""
            if chunk.startswith(GZIP_MAGIC):
                self._gzip = GzipMembers()
        return self._gzip.inflate(chunk) if self._gzip is not None else chunk

    def finish(self) -> bytes:
        if self._gzip is not None:
            return self._gzip.finish()
        return self._head


def spool_body(response: Response, spool_path: Path, progress: ProgressCallback | None) -> int:
    """Write the decompressed body to ``spool_path``; raise IncompleteExportError if it ended early."""
    started = time.monotonic()
    last_report = started
    total = 0
    decoder = BodyDecoder(gzipped="gzip" in response.headers.get("Content-Encoding", "").lower())
    try:
        with open(spool_path, "wb") as spool:
            try:
                for chunk in response.raw.stream(SPOOL_CHUNK_BYTES, decode_content=False):
                    data = decoder.decode(chunk)
                    spool.write(data)
                    total += len(data)
                    now = time.monotonic()
                    if progress and now - last_report >= 1.0:
                        progress("download", {"bytes": total, "seconds": now - started})
                        last_report = now
                data = decoder.finish()
            except (ProtocolError, ReadTimeoutError, DecodeError) as exc:
                raise IncompleteExportError(f"the export body was cut off: {exc}") from None
            except isal_zlib.error as exc:  # type: ignore[misc]
                raise IncompleteExportError(f"the export body is not valid gzip: {exc}") from None
            spool.write(data)
            total += len(data)
        final_line, ends_with_newline = _final_line(spool_path)
        if final_line.strip() == TERMINATED_EARLY_MARKER:
            raise IncompleteExportError("Mixpanel ended the export with 'export terminated early'")
        # a last line without its newline is cut unless it is whole JSON or no export line at all
        # (every export line starts with "{"; an HTML page often ends without a newline): a whole
        # but unusable last line is the parser's to reject, and a body of such lines its to refuse
        cut_line = final_line.lstrip().startswith(b"{") and not _is_complete_json(final_line)
        if final_line and not ends_with_newline and cut_line:
            raise IncompleteExportError("the export body ended in the middle of a line")
    except BaseException:
        spool_path.unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return total


def _final_line(path: Path) -> tuple[bytes, bool]:
    """The last non-empty line of a file, read from its end, and whether the file ends in ``\\n``."""
    size = path.stat().st_size
    if size == 0:
        return b"", True
    block = 1 << 16
    with open(path, "rb") as handle:
        tail = b""
        position = size
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
            stripped = tail.rstrip(b"\n")
            if b"\n" in stripped or position == 0:
                return stripped.rsplit(b"\n", 1)[-1], tail.endswith(b"\n")
            block *= 2
    return b"", True


def body_sample(path: Path, line_number: int = 1, *, secrets: Sequence[str] = ()) -> str:
    """The body from line ``line_number`` on, quoted for an error message: printable (whitespace
    runs shown as one space, other control characters as ``?``), at most ``SAMPLE_CHARS``
    characters, and without ``secrets`` (a page may echo the request's credentials)."""
    with open(path, "rb") as body:
        for _ in range(line_number - 1):
            if not body.readline():
                break
        head = body.read(SAMPLE_CHARS * 8)
    text = " ".join(head.decode("utf-8", "replace").split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = "".join(char if char.isprintable() else "?" for char in text)
    if not text:
        return "an empty body"
    return repr(text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS or len(head) == SAMPLE_CHARS * 8 else ""))


def _is_complete_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
