"""The export client's body handling: every gzip member inflated, gzip found by its magic bytes,
an answer that is not an export refused inside dlt's retry, and its quote (printable, short, no
credential)."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mixpanel_alerts.pipelines.mixpanel.body import (
    SAMPLE_CHARS,
    BodyDecoder,
    GzipMembers,
    IncompleteExportError,
    body_sample,
)
from mixpanel_alerts.pipelines.mixpanel.client import (
    ExportClient,
    NotAnExport,
    NotAnExportAnswerError,
    RateLimiter,
    _auth_secrets,
)
from mixpanel_alerts.pipelines.mixpanel.parser import ExportParser
from mixpanel_alerts.pipelines.mixpanel.window import ExportWindow
from mixpanel_alerts.simulator import ExportSimulator
from tests.conftest import ENABLED_NAMES, PROJECT_ID, SA_SECRET, SA_USERNAME, recent_traffic

BODY = b"".join(b'{"event":"page_view","properties":{"time":%d,"$insert_id":"i-%d"}}\n' % (n, n) for n in range(500))


def members(body: bytes, count: int) -> bytes:
    """``body`` gzipped as ``count`` members back to back, split mid-line."""
    size = -(-len(body) // count)
    return b"".join(gzip.compress(body[offset : offset + size]) for offset in range(0, len(body), size))


def decode(decoder: BodyDecoder | GzipMembers, payload: bytes, chunk_size: int) -> bytes:
    """``payload`` through ``decoder`` in chunks of ``chunk_size`` bytes, as the download reads it."""
    step = decoder.decode if isinstance(decoder, BodyDecoder) else decoder.inflate
    out = [step(payload[offset : offset + chunk_size]) for offset in range(0, len(payload), chunk_size)]
    return b"".join(out) + decoder.finish()


@pytest.mark.parametrize("count", [1, 2, 3, 17], ids=lambda count: f"{count}-members")
@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20], ids=lambda size: f"chunks-of-{size}")
def test_every_gzip_member_is_inflated(count: int, chunk_size: int) -> None:
    payload = members(BODY, count)
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload) != BODY or count == 1  # one decompressor stops
    assert decode(GzipMembers(), payload, chunk_size) == BODY


def test_empty_members_and_zero_padding_between_and_after_members_are_skipped() -> None:
    payload = gzip.compress(b"") + gzip.compress(BODY[:100]) + b"\x00" * 8 + gzip.compress(BODY[100:]) + b"\x00" * 512
    assert decode(GzipMembers(), payload, 64) == BODY


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(members(BODY, 2)[:-10], id="last-member-cut"),
        pytest.param(gzip.compress(BODY)[:-1], id="one-member-cut"),
        pytest.param(b"", id="no-member-at-all"),
    ],
)
def test_a_gzip_body_that_ends_inside_a_member_is_incomplete(payload: bytes) -> None:
    with pytest.raises(IncompleteExportError, match="ended before its end"):
        decode(GzipMembers(), payload, 1000)


@pytest.mark.parametrize("chunk_size", [1, 2, 4096], ids=lambda size: f"chunks-of-{size}")
def test_gzip_without_content_encoding_is_found_by_its_magic_bytes(chunk_size: int) -> None:
    assert decode(BodyDecoder(gzipped=False), members(BODY, 2), chunk_size) == BODY


@pytest.mark.parametrize(
    "body",
    [pytest.param(BODY, id="export"), pytest.param(b"\n", id="one-byte"), pytest.param(b"", id="empty")],
)
def test_a_plain_body_passes_through_unchanged(body: bytes) -> None:
    assert decode(BodyDecoder(gzipped=False), body, 3) == body


def test_content_encoding_gzip_is_inflated_member_by_member() -> None:
    assert decode(BodyDecoder(gzipped=True), members(BODY, 3), 1 << 20) == BODY


def write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_bytes(body)
    return path


def test_the_sample_is_the_body_start_on_one_printable_line(tmp_path: Path) -> None:
    page = b"<!DOCTYPE html>\n<html>\r\n  <head><title>502 Bad Gateway</title></head>\x07\n<body>" + b"x" * 500
    sample = body_sample(write(tmp_path, page))
    assert sample.startswith("'<!DOCTYPE html> <html> <head><title>502 Bad Gateway</title></head>? <body>")
    assert sample.endswith("…'")
    assert len(sample) == SAMPLE_CHARS + 3  # quotes and the ellipsis


def test_the_sample_starts_at_the_line_named(tmp_path: Path) -> None:
    body = BODY[:200].split(b"\n", 2)[0] + b"\n" + b"garbage after one event\n"
    assert body_sample(write(tmp_path, body), 2) == "'garbage after one event'"


def test_the_sample_never_shows_a_credential(tmp_path: Path) -> None:
    auth = ("bot.mp-service-account", "s3cr3t-Value")
    token = _auth_secrets(auth)[1]
    body = b"<html>denied for s3cr3t-Value (Authorization: Basic " + token.encode() + b")</html>"
    sample = body_sample(write(tmp_path, body), secrets=_auth_secrets(auth))
    assert "s3cr3t" not in sample and token[:20] not in sample
    assert "***" in sample
    legacy = body_sample(write(tmp_path, b"unknown secret legacy-Zp4 here"), secrets=_auth_secrets(("legacy-Zp4", "")))
    assert "legacy-Zp4" not in legacy


def test_an_empty_body_is_said_so(tmp_path: Path) -> None:
    assert body_sample(write(tmp_path, b"  \n\n")) == "an empty body"


def export_check(path: Path) -> NotAnExport | None:
    """The source's check of an answer: the parser's verdict."""
    parser = ExportParser(path, event_names=list(ENABLED_NAMES), project_timezone="UTC", inserted_at=datetime.now(UTC))
    try:
        parser.parse()
        return parser.stats.not_an_export()
    finally:
        parser.close()


def client_for(sim: ExportSimulator, attempts: int = 3) -> ExportClient:
    return ExportClient(
        base_url=sim.url, project_id=PROJECT_ID, auth=(SA_USERNAME, SA_SECRET),
        limiter=RateLimiter(per_second=100, per_hour=10_000), max_attempts=attempts, backoff_factor=0.01,
    )  # fmt: skip


def params(sim: ExportSimulator) -> dict[str, str]:
    return ExportWindow(sim.today(), sim.today()).params(list(ENABLED_NAMES))


@pytest.mark.parametrize("fault", ["html-200", "json-error-200", "garbage-200"])
def test_a_refused_answer_is_retried_and_the_next_one_kept(sim: ExportSimulator, tmp_path: Path, fault: str) -> None:
    sim.add_events(recent_traffic(200, seed=51))
    sim.inject(fault)

    download = client_for(sim).download(params(sim), tmp_path, accept=export_check)

    assert [(r.fault, r.status) for r in sim.requests] == [(fault, 200), (None, 200)]
    assert download.path.read_bytes() == sim.body_for(sim.requests[-1].params)


def test_an_answer_refused_every_time_fails_quoting_it_and_leaves_no_spool(
    sim: ExportSimulator, tmp_path: Path
) -> None:
    sim.add_events(recent_traffic(20, seed=52))
    sim.inject(*["html-200"] * 3)

    with pytest.raises(NotAnExportAnswerError) as failure:
        client_for(sim, attempts=3).download(params(sim), tmp_path, accept=export_check)

    message = str(failure.value)
    assert message.startswith(
        "Mixpanel export answered 200 with text/html; charset=utf-8, not JSON lines of events "
        "(8 of 8 lines are not events): '<!DOCTYPE html> <html> <head><title>502 Bad Gateway</title></head>"
    )
    assert "(3 attempts)" in message and SA_SECRET not in message
    assert len(sim.requests) == 3
    assert list(tmp_path.glob("export.jsonl")) == []
