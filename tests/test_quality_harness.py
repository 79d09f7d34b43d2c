"""``scripts/quality.py`` (``just quality``): series to Mixpanel events, the way back, the scorer's input.

Tiny synthetic series in ``tmp_path``; the product's own parser, simulator and CLI where they are involved.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from mixpanel_alerts.core.events_config import parse_events_config

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "quality.py"
SHARED_SCORER = SCRIPT.parent.parent.parent / "shared" / "detection" / "score.py"
TODAY = date(2026, 12, 1)  # a Tuesday


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


quality = _load_script()


def write_series(directory: Path, key: str, points: list[tuple[str, int]]) -> Path:
    path = directory / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("timestamp,value\n" + "".join(f"{at},{count}\n" for at, count in points))
    return path


def grid(start: str, counts: list[int]) -> list[tuple[str, int]]:
    """Points every 5 minutes from ``start`` (NAB's format: seconds included)."""
    first = datetime.fromisoformat(start)
    return [((first + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), n) for i, n in enumerate(counts)]


@pytest.fixture
def series_dir(tmp_path: Path) -> Path:
    """A series folder laid out like ../shared/detection: nab/windows.json names the series."""
    nab = tmp_path / "series" / "nab"
    write_series(nab, "realTweets/Twitter_volume_AAA.csv", grid("2015-02-26 23:47:53", [12, 3, 0, 7, 101]))
    write_series(nab, "realTweets/Twitter_volume_BBB.csv", grid("2015-02-27 00:02:53", [5, 5]))
    windows = {
        "realTweets/Twitter_volume_AAA.csv": [["2015-02-26 23:57:53.000000", "2015-02-27 00:07:53.000000"]],
        "realTweets/Twitter_volume_BBB.csv": [],
    }
    (nab / "windows.json").write_text(json.dumps(windows))
    return tmp_path / "series"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param(
            ["realTweets/Twitter_volume_AAPL.csv", "realTweets/Twitter_volume_FB.csv"],
            ["nab_aapl", "nab_fb"],
            id="ticker",
        ),
        pytest.param(
            ["a/cpu_load_1.csv", "b/disk_load_1.csv", "b/Disk-Writes.csv"],
            ["nab_cpu_load_1", "nab_disk_load_1", "nab_disk_writes"],
            id="ambiguous-suffix-uses-whole-name",
        ),
    ],
)
def test_event_names_come_from_the_file_names(keys, expected):
    assert list(quality.event_names(keys).values()) == expected


@pytest.mark.parametrize(
    ("count", "per_minute"),
    [
        pytest.param(0, [0, 0, 0, 0, 0], id="zero"),
        pytest.param(3, [1, 1, 1, 0, 0], id="fewer-than-minutes"),
        pytest.param(104, [21, 21, 21, 21, 20], id="remainder-first"),
    ],
)
def test_a_point_spreads_over_its_five_minutes(count, per_minute):
    start_ms = 1_000 * 60_000
    times = list(quality.point_times_ms(start_ms, count))

    assert quality.minute_counts(count) == per_minute
    assert Counter((at - start_ms) // 60_000 for at in times) == Counter(
        {minute: n for minute, n in enumerate(per_minute) if n}
    )
    assert times == sorted(set(times)), "distinct, in time order"
    if count == 104:  # seconds spread over the minute, not piled on its start
        first_minute = [at - start_ms for at in times if at < start_ms + 60_000]
        assert first_minute[0] == 0 and first_minute[-1] > 55_000


@pytest.mark.parametrize(
    "series_end",
    [
        pytest.param(datetime(2015, 4, 23, 2, 52), id="nab-end"),
        pytest.param(datetime(2026, 11, 30, 23, 59), id="yesterday"),
        pytest.param(datetime(2026, 12, 1, 0, 0), id="today-midnight"),
        pytest.param(datetime(2026, 12, 1, 0, 1), id="today"),
    ],
)
def test_the_shift_is_whole_weeks_ending_before_today(series_end):
    shift = quality.week_shift(series_end, TODAY)
    midnight = datetime(2026, 12, 1)

    assert shift % timedelta(weeks=1) == timedelta(0)
    assert (series_end + shift).weekday() == series_end.weekday()
    assert series_end + shift <= midnight < series_end + shift + timedelta(weeks=1)


def test_series_load_from_windows_json_with_their_shift(series_dir):
    loaded = quality.load_series(series_dir, TODAY)

    assert [(series.key, series.event_name, series.total) for series in loaded] == [
        ("realTweets/Twitter_volume_AAA.csv", "nab_aaa", 123),
        ("realTweets/Twitter_volume_BBB.csv", "nab_bbb", 10),
    ]
    for series in loaded:
        last_event = series.replay_starts[-1] + timedelta(minutes=5)
        assert last_event <= datetime(2026, 12, 1) < last_event + timedelta(weeks=1)


def test_without_windows_json_every_csv_is_a_series(tmp_path):
    write_series(tmp_path / "other", "x/Twitter_volume_CCC.csv", grid("2020-01-01 00:00:00", [1]))
    write_series(tmp_path / "other", "Twitter_volume_DDD.csv", grid("2020-01-01 00:00:00", [1]))

    loaded = quality.load_series(tmp_path / "other", TODAY)

    assert [(series.key, series.event_name) for series in loaded] == [
        ("Twitter_volume_DDD.csv", "nab_ddd"),
        ("x/Twitter_volume_CCC.csv", "nab_ccc"),
    ]


def test_events_per_day_add_up_to_the_series_once_each(series_dir):
    aaa, _ = quality.load_series(series_dir, TODAY)
    first_day, last_day = quality.replay_days([aaa])
    everything = list(quality.series_events(aaa, first_day, last_day))
    by_day = [event for day in (first_day, last_day) for event in quality.series_events(aaa, day, day)]

    assert (first_day, last_day) == (date(2026, 11, 26), date(2026, 11, 27)), "the points cross midnight"
    assert len(everything) == aaa.total == len(by_day)
    assert {event.properties["$insert_id"] for event in by_day} == {e.properties["$insert_id"] for e in everything}
    assert len({event.properties["$insert_id"] for event in everything}) == aaa.total
    assert {event.name for event in everything} == {"nab_aaa"}
    minutes = Counter(datetime.fromtimestamp(event.time_ms / 1000, UTC).strftime("%H:%M") for event in everything)
    assert minutes["23:47"] == 3 and minutes["23:51"] == 2, "12 events: 3, 3, 2, 2, 2 from 23:47 (shifted)"
    assert minutes["00:07"] == 21, "the last point (101) starts at its minute, 00:07"
    assert all(event.processing_ms > event.time_ms for event in everything)


def test_the_rules_are_baseline_defaults_with_overrides(series_dir):
    loaded = quality.load_series(series_dir, TODAY)

    default = json.loads(quality.events_config(loaded, None, {}))["events"][0]
    both = json.loads(quality.events_config(loaded, "both", {"sensitivity": 3}))["events"][0]
    threshold = quality.events_config(loaded, None, {"detector": None, "alert_threshold": 1000})

    assert default == {
        "name": "nab_aaa",
        "enabled": True,
        "alert_channel": "#quality",
        "time_window_minutes": 5,
        "detector": "baseline",
    }
    assert both["direction"] == "both" and both["sensitivity"] == 3
    assert parse_events_config(threshold, "EVENTS_CONFIG").enabled_names == ["nab_aaa", "nab_bbb"]


def test_the_product_sees_none_of_the_developers_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/x")
    monkeypatch.setenv("MIXPANEL_SERVICE_ACCOUNT_SECRET", "theirs")
    monkeypatch.setenv("EVENTS_CONFIG_PATH", "theirs.json")

    env = quality.product_env(tmp_path / "q.duckdb", '{"events": []}', "http://127.0.0.1:1")

    assert not {"SLACK_WEBHOOK_URL", "MIXPANEL_SERVICE_ACCOUNT_SECRET", "EVENTS_CONFIG_PATH"} & set(env)
    assert env["DUCKDB_PATH"] == str(tmp_path / "q.duckdb") and env["MIXPANEL_EXPORT_URL"] == "http://127.0.0.1:1"


def test_backfill_runs_cover_the_days_without_gaps():
    chunks = list(quality.day_chunks(date(2026, 10, 1), date(2026, 10, 16), 7))

    assert chunks == [
        (date(2026, 10, 1), date(2026, 10, 7)),
        (date(2026, 10, 8), date(2026, 10, 14)),
        (date(2026, 10, 15), date(2026, 10, 16)),
    ]


def test_incidents_map_back_to_the_series_own_time(series_dir):
    loaded = quality.load_series(series_dir, TODAY)
    shift = loaded[0].shift
    replayed = datetime(2015, 2, 26, 23, 59) + shift  # the third minute of the point 23:57:53
    incidents = [
        {"event_name": "nab_aaa", "first_anomalous_minute": (replayed + timedelta(minutes=10)).isoformat() + "Z"},
        {"event_name": "nab_aaa", "first_anomalous_minute": replayed.isoformat() + "+00:00"},
        {"event_name": "nab_bbb", "first_anomalous_minute": "2015-01-01T00:00:00Z"},  # outside every point
        {"event_name": "not_a_series", "first_anomalous_minute": "2026-11-26T00:00:00Z"},
    ]

    mapped = quality.incidents_by_series(incidents, loaded)

    assert mapped == {
        "realTweets/Twitter_volume_AAA.csv": ["2015-02-26T23:59:53", "2015-02-27T00:09:53"],
        "realTweets/Twitter_volume_BBB.csv": [(datetime(2015, 1, 1) - loaded[1].shift).isoformat()],
    }


@pytest.mark.skipif(not SHARED_SCORER.is_file(), reason="the shared scorer (../shared/detection) is not here")
def test_a_backtest_report_is_scored_by_the_series_scorer(series_dir, tmp_path, capsys):
    scorer = series_dir / "score.py"
    shutil.copy(SHARED_SCORER, scorer)  # it reads the windows beside itself: the synthetic ones
    loaded = quality.load_series(series_dir, TODAY)
    shift = loaded[0].shift
    report = tmp_path / "backtest.json"
    incident = {"last_anomalous_minute": "", "peak_count": 101, "expected_count": 12.5}
    inside = datetime(2015, 2, 27, 0, 2) + shift  # first minute of the point 00:02:53: inside the window
    outside = datetime(2015, 2, 26, 23, 57) + shift  # the window's first point, floored: but it starts at :53
    report.write_text(
        json.dumps(
            {
                "incidents": [
                    {**incident, "event_name": "nab_aaa", "kind": "spike", "first_anomalous_minute": f"{inside}Z"},
                    {**incident, "event_name": "nab_aaa", "kind": "drop", "first_anomalous_minute": f"{outside}Z"},
                ]
            }
        )
    )

    line = quality.score_backtest(report, loaded, scorer)

    assert json.loads((tmp_path / "incidents.json").read_text()) == {
        "realTweets/Twitter_volume_AAA.csv": ["2015-02-26T23:57:53", "2015-02-27T00:02:53"],
        "realTweets/Twitter_volume_BBB.csv": [],
    }
    assert line.startswith("recall 1/1 = 100%  false incidents/week 0.00  median delay 0 min"), line
    printed = capsys.readouterr().out
    assert "realTweets/Twitter_volume_AAA.csv: 2 incident(s) (1 drop, 1 spike)" in printed
    assert "realTweets/Twitter_volume_BBB.csv: 0 incident(s) (0 drop, 0 spike)" in printed


@pytest.mark.slow
def test_the_load_through_the_product_is_exact(series_dir, tmp_path, capsys):
    """The real path: the simulator, ``mixpanel-alerts backfill`` in runs of one day, the raw table."""
    keep = tmp_path / "work"
    threshold_rules = json.dumps({"detector": None, "alert_threshold": 1000})
    args = ["--series-dir", str(series_dir), "--keep", str(keep), "--days-per-run", "1", "--load-only"]

    quality.main([*args, "--events-config-extra", threshold_rules])

    with duckdb.connect(str(keep / "quality.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select event_name, strftime(min(event_timestamp), '%a %H:%M:%S'), count(*) "
            f"from {quality.RAW_TABLE} group by 1 order by 1"
        ).fetchall()
    # the new-event case: the first series' second half under its own name
    assert rows == [
        ("nab_aaa", "Thu 23:47:00", 123),
        ("nab_aaa_new", "Fri 00:02:00", 108),
        ("nab_bbb", "Fri 00:02:00", 10),
    ]
    assert "raw table matches the series: 241 events" in capsys.readouterr().out
