"""The export parser's two reads of a spooled body agree: the narrow read (four properties) that
counts new events, and the full read that the DuckDB destination inserts from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.common.destination.client import SqlModel

from mixpanel_alerts.pipelines.mixpanel.client import NotAnExport
from mixpanel_alerts.pipelines.mixpanel.parser import MAX_LINE_BYTES, ExportParser, ReadMode
from mixpanel_alerts.pipelines.mixpanel.settings import EVENT_COLUMNS
from tests.hostile import hostile_lines

NAMES = ["page_view", "checkout_completed"]
INSERTED_AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

# Values whose text a careless read would change: a float written with a trailing zero, an
# exponent, an integer past 64 bits, escapes, an object as distinct_id, a line separator.
LINES = [
    b'{"event":"page_view","properties":{"time":1.7e12,"distinct_id":1.50,"$insert_id":"x\\u00e9y",'
    b'"mp_processing_time_ms":1700000000100}}',
    b'{"event":"page_view","properties":{"time":1700000000,"distinct_id":{"b":[1, 2]},'
    b'"$insert_id":12345678901234567890123,"mp_processing_time_ms":1700000000200}}',
    b'{"event":"checkout_completed","properties":{"time":1700000000123,"distinct_id":"a\\"b\\\\c",'
    b'"$insert_id":"\xe2\x80\xa8sep","mp_processing_time_ms":1700000000300}}',
    b'{"event":"checkout_completed","properties":{"time":"1700000001","distinct_id":"  spaced  ",'
    b'"$insert_id":"i-4","mp_processing_time_ms":"1700000000400","plan":"pro"}}',
]


def parser_for(tmp_path: Path, lines: list[bytes]) -> ExportParser:
    spool = tmp_path / "export.jsonl"
    spool.write_bytes(b"\n".join(lines) + b"\n")
    return ExportParser(spool, event_names=NAMES, project_timezone="UTC", inserted_at=INSERTED_AT)


def keys(parser: ExportParser) -> list[tuple[str, int]]:
    return parser.con.execute("select event_id, time_ms from export_keys order by time_ms, event_id").fetchall()


def test_narrow_and_full_reads_key_events_alike(tmp_path: Path) -> None:
    parser = parser_for(tmp_path, LINES)
    parser._read(parser.spool_path, mode="narrow")
    narrow = keys(parser)
    parser._read(parser.spool_path)
    assert keys(parser) == narrow
    assert len({event_id for event_id, _ in narrow}) == len(LINES)


def test_the_inserted_rows_carry_the_counted_keys(tmp_path: Path) -> None:
    """The ids the parser counts as new are the ids the destination's insert writes."""
    parser = parser_for(tmp_path, LINES)
    parser.parse()
    assert parser.count_new_events() == len(LINES)
    counted = {row[0] for row in parser.con.execute("select event_id from export_keys").fetchall()}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as warehouse:
        warehouse.execute(
            "create table events (event_id varchar, event_name varchar, event_timestamp timestamptz, "
            "distinct_id varchar, insert_id varchar, properties json, mp_processing_time timestamptz, "
            "inserted_at timestamptz)"
        )
        warehouse.execute(f"insert into events {parser.new_events_model('events')}")
        inserted = {row[0] for row in warehouse.execute("select event_id from events").fetchall()}
        warehouse.execute(f"insert into events {parser.new_events_model('events')}")
        assert warehouse.execute("select count(*) from events").fetchall()[0][0] == len(LINES), "a rerun adds nothing"
    assert inserted == counted


def warehouse_rows(tmp_path: Path, parser: ExportParser, name: str) -> list[tuple[object, ...]]:
    """What the DuckDB destination's load writes, in a fresh DuckDB file: the model goes through dlt
    (which rewrites it with sqlglot before DuckDB runs it), as in a collect."""
    pipeline = dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb")),
        dataset_name="raw",
    )
    model = tmp_path / f"{name}.model"
    model.write_text(
        str(SqlModel(parser.new_events_model(pipeline.sql_client().make_qualified_table_name("events")), "duckdb"))
    )

    @dlt.resource(name="events", columns=EVENT_COLUMNS)  # type: ignore[call-overload]
    def events() -> Iterator[object]:
        yield dlt.mark.with_file_import(str(model), "model", 1)

    dlt.config["normalize.model_normalizer.add_dlt_load_id"] = False
    pipeline.run(events())
    with pipeline.sql_client() as client:
        columns = ", ".join(EVENT_COLUMNS)
        rows = client.execute_sql(
            f"select {columns} from {client.make_qualified_table_name('events')} order by event_id"
        )
    return [tuple(row) for row in rows or []]


def test_the_insert_skips_the_checks_only_when_the_first_read_found_no_reject(tmp_path: Path) -> None:
    """A clean export is inserted without re-checking each line, and the rows are the same as
    with the checks; with a reject in the file, the insert checks again and leaves it out."""
    parser = parser_for(tmp_path, LINES)
    parser.parse()
    parser.count_new_events()
    assert parser.readable_lines_usable
    unchecked = warehouse_rows(tmp_path, parser, "unchecked")
    parser.readable_lines_usable = False
    assert warehouse_rows(tmp_path, parser, "checked") == unchecked
    assert len(unchecked) == len(LINES)

    no_time = b'{"event":"page_view","properties":{"distinct_id":"u","$insert_id":"no-time"}}'
    parser = parser_for(tmp_path, [*LINES, no_time, b'{"event":"page_view","properties":{}}'])
    parser.parse()
    assert parser.count_new_events() == len(LINES)
    assert not parser.readable_lines_usable
    assert warehouse_rows(tmp_path, parser, "with_rejects") == unchecked


def test_lines_the_narrow_read_cannot_type_fall_back_to_the_full_read(tmp_path: Path) -> None:
    """A repeated key or a non-object ``properties`` fails the narrow read; an event without
    ``$insert_id`` is keyed by its whole properties. Each is still keyed or rejected."""
    lines = [
        *LINES,
        b'{"event":"page_view","properties":{"time":1700000002,"time":1700000003,"$insert_id":"dup-key"}}',
        b'{"event":"page_view","properties":5}',
        b'{"event":"page_view","properties":{"time":1700000004,"distinct_id":"no-insert-id"}}',
    ]
    parser = parser_for(tmp_path, lines)
    parser.parse()
    assert parser.stats.lines == len(lines)
    assert parser.stats.valid == len(LINES) + 2
    assert [reject["reason"] for reject in parser.rejects] == ["no usable properties.time"]
    assert parser.count_new_events() == len(LINES) + 2


def test_times_that_cannot_be_timestamps_are_rejected_not_fatal(tmp_path: Path) -> None:
    """NaN, infinity, 1e30, a negative ``time`` or one in the last days of 9999 make the line a
    reject; a ``mp_processing_time_ms`` past the year 9999 is dropped (the event stays). Neither
    stops the read or the insert."""
    unusable = ['"nan"', '"inf"', "-5", "1e30", '"1e30"', "253402200000000"]  # the last: 9999-12-30 20:00
    lines = [
        *LINES,
        *(
            f'{{"event":"page_view","properties":{{"time":{value},"$insert_id":"t{n}"}}}}'.encode()
            for n, value in enumerate(unusable)
        ),
        b'{"event":"page_view","properties":{"time":1700000005,"$insert_id":"p",'
        b'"mp_processing_time_ms":9000000000000000000}}',
    ]
    parser = parser_for(tmp_path, lines)
    parser.parse()
    assert [reject["reason"] for reject in parser.rejects] == ["no usable properties.time"] * len(unusable)
    assert parser.stats.max_processing_ms == 1700000000400
    assert parser.count_new_events() == len(LINES) + 1
    rows = warehouse_rows(tmp_path, parser, "odd_times")
    assert len(rows) == len(LINES) + 1
    assert [row[6] for row in rows if row[4] == "p"] == [None]


def test_a_file_read_json_cannot_type_is_read_as_json_values_with_the_same_keys(tmp_path: Path) -> None:
    """A repeated top-level key fails ``read_json`` whatever the columns; the parser then reads
    each line as one JSON value. Its keys and rows equal the usual read's, so an event keyed in
    one run this way and in the next the usual way is still stored once."""
    no_insert_id = b'{"event":"page_view","properties":{"time":1700000006,"distinct_id":"n","x":[1.50,{"a":null}]}}'
    parser = parser_for(tmp_path, [*LINES, no_insert_id])
    parser._read(parser.spool_path)
    full = keys(parser)
    parser._read(parser.spool_path, mode="objects")
    assert keys(parser) == full

    clean = parser_for(tmp_path, [*LINES, no_insert_id])
    clean.parse()
    clean.count_new_events()
    expected = warehouse_rows(tmp_path, clean, "clean")

    repeated_key = b'{"event":"page_view","event":"page_view","properties":{"time":1700000007,"$insert_id":"r"}}'
    parser = parser_for(tmp_path, [*LINES, no_insert_id, repeated_key])
    parser.parse()
    assert parser.read_mode == "objects"
    assert parser.stats.rejected == 0
    assert parser.count_new_events() == len(LINES) + 2
    rows = warehouse_rows(tmp_path, parser, "repeated_key")
    assert [row for row in rows if row[4] != "r"] == expected


HOSTILE = hostile_lines("page_view", 1_700_000_100_000)


@pytest.mark.parametrize("mode", ["narrow", "full", "objects"])
def test_every_read_mode_loads_through_dlt(tmp_path: Path, mode: ReadMode) -> None:
    """Whichever read the parser ends with, dlt can run its insert: sqlglot rewrites the model, and
    DuckDB once read a rewritten ``json -> '$.properties'`` as a lambda, so one repeated key in an
    export failed every collect."""
    parser = parser_for(tmp_path, LINES)
    parser.parse()
    parser._read(parser.spool_path, mode=mode)
    parser.read_mode = mode
    parser.count_new_events()
    assert [row[0] for row in warehouse_rows(tmp_path, parser, mode)] == sorted(row[0] for row in keys(parser))


@pytest.mark.parametrize("hostile_first", [True, False], ids=["hostile-first", "hostile-last"])
def test_hostile_lines_are_events_or_rejects_and_load(tmp_path: Path, hostile_first: bool) -> None:
    lines = [*HOSTILE, *LINES] if hostile_first else [*LINES, *HOSTILE]
    parser = parser_for(tmp_path, lines)
    parser.parse()
    new = parser.count_new_events()
    blank = sum(1 for line in lines if not line.strip())
    assert parser.stats.valid + parser.stats.ignored + parser.stats.rejected == len(lines) - blank
    assert new >= len(LINES)
    rows = warehouse_rows(tmp_path, parser, "hostile")
    assert len(rows) == new == len({row[0] for row in rows})
    batches = list(parser.new_events())  # the Arrow path a BigQuery destination loads from
    assert sum(batch.num_rows for batch in batches) == new


def test_lines_duckdb_cannot_read_are_found_by_halving(tmp_path: Path) -> None:
    """The last resort when even the one-value-per-line read fails: the lines DuckDB cannot read are
    found by halving, rejected, and the rest is read."""
    good = [
        b'{"event":"page_view","properties":{"time":%d,"$insert_id":"g%d"}}' % (1_700_000_000_000 + n, n)
        for n in range(1000)
    ]
    bad = b'{"event":"page_view","properties":{"time":1,"s":"\\ud800 lone surrogate"}}'
    lines = [bad, *good[:400], bad, *good[400:], bad]
    parser = parser_for(tmp_path, lines)
    kept = parser._separate_lines_duckdb_cannot_read(parser.spool_path)
    assert len(kept.read_bytes().splitlines()) == len(good)
    assert len(parser.rejects) == 3
    assert all(reject["reason"].startswith("DuckDB cannot read it") for reject in parser.rejects)
    parser._read(kept, mode="objects")
    assert len(keys(parser)) == len(good)


def test_a_line_longer_than_the_readers_limit_is_a_reject(tmp_path: Path) -> None:
    huge = b'{"event":"page_view","properties":{"time":1700000000,"blob":"' + b"x" * MAX_LINE_BYTES + b'"}}'
    parser = parser_for(tmp_path, [*LINES, huge])
    parser.parse()
    assert [reject["reason"] for reject in parser.rejects] == [f"longer than {MAX_LINE_BYTES >> 20} MiB"]
    assert parser.count_new_events() == len(LINES)
    assert parser.stats.foreign == 0


def test_a_line_too_long_to_read_that_does_not_start_like_an_object_is_no_export_line(tmp_path: Path) -> None:
    """A page on one line longer than the readers' limit is not an export either."""
    parser = parser_for(tmp_path, [b"<html><body>" + b"x" * MAX_LINE_BYTES + b"</body></html>"])
    parser.parse()
    assert parser.stats.not_an_export() == NotAnExport("1 of 1 lines are not events", 1)


@pytest.mark.parametrize("mode", ["narrow", "full", "objects"])
def test_an_event_name_that_is_not_a_string_is_a_reject(tmp_path: Path, mode: ReadMode) -> None:
    """`"event": true` is not the event named "true" (a VARCHAR read once turned it into that name)."""
    lines = [
        b'{"event":true,"properties":{"time":1700000000,"$insert_id":"b"}}',
        b'{"event":12,"properties":{"time":1700000001,"$insert_id":"n"}}',
        b'{"event":"true","properties":{"time":1700000002,"$insert_id":"s"}}',
    ]
    spool = tmp_path / "export.jsonl"
    spool.write_bytes(b"\n".join(lines) + b"\n")
    parser = ExportParser(spool, event_names=["true", "12"], project_timezone="UTC", inserted_at=INSERTED_AT)
    parser._read(spool, mode=mode)
    reasons = parser.con.execute("select reject_reason from export_keys order by time_ms nulls first").fetchall()
    assert sorted(reason or "" for (reason,) in reasons) == ["", *["event name is not a string"] * 2]


def event_lines(count: int, *, start_ms: int = 1_700_000_000_000) -> list[bytes]:
    return [
        b'{"event":"page_view","properties":{"time":%d,"$insert_id":"e%d","mp_processing_time_ms":%d}}'
        % (start_ms + n, n, start_ms + n + 2000)
        for n in range(count)
    ]


NOT_EXPORTS = [
    pytest.param([b"<!DOCTYPE html>", b"<html><head><title>502 Bad Gateway</title></head>", b"</html>"], id="html"),
    pytest.param([b"<html><body><h1>503 Service Unavailable</h1></body></html>"], id="html-without-doctype"),
    pytest.param([b'<?xml version="1.0" encoding="UTF-8"?>', b"<Error><Code>AccessDenied</Code></Error>"], id="xml"),
    pytest.param([b"Service Unavailable", b"Please try again later."], id="plain-text"),
    pytest.param([b"[" + b",".join(event_lines(3)) + b"]"], id="json-array-of-events"),
    pytest.param([b"[", *(line + b"," for line in event_lines(3)), b"]"], id="pretty-json-array"),
    pytest.param([b'{"error": "Service temporarily unavailable"}'], id="json-error-object"),
    pytest.param([b'{"status": "maintenance", "retry_after": 60}'], id="json-object-without-error"),
    pytest.param([b"{", b'  "error": "rate limited"', b"}"], id="pretty-json-error-object"),
    pytest.param([b"{}", b"null", b"[]"], id="empty-json-values"),
    pytest.param([*event_lines(10), *(b"garbage %d" % n for n in range(10))], id="events-then-as-much-garbage"),
    pytest.param([*event_lines(3), b"<html>", *(b"<p>line %d</p>" % n for n in range(20))], id="events-then-html"),
]


@pytest.mark.parametrize("lines", NOT_EXPORTS)
def test_a_body_mostly_of_lines_that_are_no_export_line_is_not_an_export(tmp_path: Path, lines: list[bytes]) -> None:
    parser = parser_for(tmp_path, lines)
    parser.parse()
    refused = parser.stats.not_an_export()
    assert refused is not None and refused.reason.endswith("lines are not events")
    assert parser.stats.foreign >= parser.stats.lines - parser.stats.foreign


EXPORTS = [
    pytest.param([], id="empty"),
    pytest.param([b"", b"   ", b"\t"], id="only-blank-lines"),
    pytest.param(event_lines(40), id="events"),
    pytest.param([*event_lines(40), b"not json", b"[1, 2, 3]", b"<br>"], id="events-and-a-few-bad-lines"),
    pytest.param([b"not json", *event_lines(2)], id="a-bad-first-line-then-more-events"),
    # the second run of an export with bad lines: few new events, the bad lines again; most of them
    # are export lines whose values are unusable (rejects), not foreign text
    pytest.param(
        [b"[1, 2, 3]", b'{"event":"x"}', b'{"event":"","properties":{"time":1}}', b'{"event":"a","properties":{}}'],
        id="bad-event-lines-without-events",
    ),
    pytest.param(HOSTILE, id="hostile-lines"),
]


@pytest.mark.parametrize("lines", EXPORTS)
def test_an_export_with_bad_lines_is_an_export_and_its_bad_lines_rejects(tmp_path: Path, lines: list[bytes]) -> None:
    parser = parser_for(tmp_path, lines)
    parser.parse()
    assert parser.stats.not_an_export() is None
    assert parser.stats.valid + parser.stats.ignored + parser.stats.rejected == sum(1 for line in lines if line.strip())


def test_the_first_foreign_line_is_named_when_the_body_starts_with_events(tmp_path: Path) -> None:
    parser = parser_for(tmp_path, [*event_lines(2), b"<html>", b"<body>upstream timed out</body>", b"</html>"])
    parser.parse()
    assert (parser.stats.foreign, parser.stats.first_foreign_line) == (3, 3)
    assert parser.stats.not_an_export() == NotAnExport("3 of 5 lines are not events", 3)


def test_processing_time_in_the_future_and_the_lateness_quartiles_are_counted(tmp_path: Path) -> None:
    """Events processed after the answer arrived (beyond a minute) are counted, and the quartiles of
    processing time minus `time` (as exported) are read for the requested events only."""
    inserted_ms = int(INSERTED_AT.timestamp() * 1000)
    lines = [
        b'{"event":"page_view","properties":{"time":%d,"$insert_id":"p%d","mp_processing_time_ms":%d}}'
        % (inserted_ms - 600_000, n, inserted_ms - 600_000 + 1000 * n)
        for n in range(1, 101)
    ]
    lines += [
        b'{"event":"page_view","properties":{"time":%d,"$insert_id":"soon","mp_processing_time_ms":%d}}'
        % (inserted_ms, inserted_ms + 30_000),
        b'{"event":"page_view","properties":{"time":%d,"$insert_id":"ahead","mp_processing_time_ms":%d}}'
        % (inserted_ms, inserted_ms + 86_400_000),
        b'{"event":"not_requested","properties":{"time":%d,"$insert_id":"x","mp_processing_time_ms":%d}}'
        % (inserted_ms, inserted_ms + 2 * 86_400_000),
    ]
    parser = parser_for(tmp_path, lines)
    parser.parse()
    assert parser.stats.future == 1
    assert parser.stats.max_processing_ms == inserted_ms + 86_400_000
    assert parser.stats.gap_events == 102
    assert parser.stats.gap_quartiles_ms == (26_000, 50_000, 76_000)  # 1..100 s and 30 s (soon)
