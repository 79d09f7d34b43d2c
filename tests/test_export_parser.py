"""The export parser's two reads of a spooled body agree: the narrow read (four properties) that
counts new events, and the full read that the DuckDB destination inserts from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.mixpanel.helpers import ExportParser

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
    """What the destination's insert writes, in a fresh DuckDB file."""
    with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as warehouse:
        warehouse.execute(
            "create table events (event_id varchar, event_name varchar, event_timestamp timestamptz, "
            "distinct_id varchar, insert_id varchar, properties json, mp_processing_time timestamptz, "
            "inserted_at timestamptz)"
        )
        warehouse.execute(f"insert into events {parser.new_events_model('events')}")
        return warehouse.execute("select * from events order by event_id").fetchall()


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
