"""dbt parses once: a later dbt command against the same warehouse parses nothing, in the same
process (the manifest it kept) and in the next one (dbt's partial parsing finds nothing changed),
whatever moment it runs as of; the moment still reaches the models."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mixpanel_alerts.simulator import ExportSimulator, make_event
from tests.conftest import output_of, query, rule, write_events_config

SPIKE = "impression_error_null_pointer_detected"
# what dbt's log says whenever it parses: a full parse ("Unable to do partial parsing because …"), or
# partial parsing, which compares the files first ("Partial parsing enabled: 0 files deleted, …")
PARSES = re.compile(r"Unable to do partial parsing|Partial parsing enabled: ")
RUNS = re.compile(r"Running with dbt=")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def dbt_log(home: Path) -> str:
    """dbt's own log (debug level) in the warehouse's working copy under ``home``'s cache folder."""
    (log,) = (home / ".cache" / "mixpanel-alerts" / "dbt").glob("*/logs/dbt.log")
    return log.read_text(encoding="utf-8", errors="replace")


def saved_manifest(home: Path) -> str:
    """The digest of the manifest dbt saved for partial parsing (rewritten by every parse)."""
    (path,) = (home / ".cache" / "mixpanel-alerts" / "dbt").glob("*/target/partial_parse.msgpack")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spike_scenario(sim: ExportSimulator, directory: Path) -> datetime:
    """Six events of one rule (threshold 3) in a minute 20 minutes ago; that minute."""
    spike = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    write_events_config(directory, {"events": [rule(SPIKE, alert_threshold=3)]})
    sim.add_events([make_event(SPIKE, spike + timedelta(seconds=5 * index)) for index in range(6)])
    return spike


def incident_status(db_path: Path) -> list[tuple[Any, ...]]:
    return query(db_path, "select status from mixpanel_data.incidents")


def test_a_second_detect_in_the_process_parses_nothing_and_runs_as_of_its_own_moment(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    from mixpanel_alerts.detection import forget_manifests

    spike = spike_scenario(sim, tmp_path)
    forget_manifests()  # the first command parses, whatever tests ran before in this process
    first = run_cli(["run"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=2))))
    assert first.returncode == 0, output_of(first)
    assert incident_status(db_path) == [("open",)]
    log = dbt_log(tmp_path)
    assert len(PARSES.findall(log)) == 1, log

    later = run_cli(["detect"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=30))))
    assert later.returncode == 0, output_of(later)
    # the models ran as of the new moment: the cooldown has passed
    assert incident_status(db_path) == [("over",)]
    this_detect = dbt_log(tmp_path)[len(log) :]
    assert RUNS.search(this_detect), this_detect  # its build is in the log
    assert not PARSES.search(this_detect), this_detect


def test_the_next_process_parses_nothing_when_only_the_moment_changed(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """As cron runs it: a process per run, each pinned to its own moment (a replay, a run after a
    long collect). The next process loads the manifest the first one stored in the working copy:
    dbt does not parse at all, and its own saved manifest stays as it was."""
    from mixpanel_alerts.detection import forget_manifests

    spike = spike_scenario(sim, tmp_path)
    forget_manifests()  # this process parses, and dbt saves what it parsed in the working copy
    first = run_cli(["run"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=2))))
    assert first.returncode == 0, output_of(first)
    assert incident_status(db_path) == [("open",)]
    saved, log = saved_manifest(tmp_path), dbt_log(tmp_path)

    later = run_cli(["detect"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=30))), subprocess=True)
    assert later.returncode == 0, output_of(later)
    assert incident_status(db_path) == [("over",)]
    this_detect = dbt_log(tmp_path)[len(log) :]
    assert RUNS.search(this_detect), this_detect  # its build is in the log
    assert not PARSES.search(this_detect), this_detect
    assert saved_manifest(tmp_path) == saved


def test_a_stored_manifest_that_cannot_serve_is_parsed_again(
    sim: ExportSimulator, make_env: Callable[..., dict[str, str]], run_cli: Callable[..., Any], tmp_path: Path,
    db_path: Path,
) -> None:  # fmt: skip
    """The manifest a process stores for the next is a cache: cut short, it is parsed again; made
    for other settings (another raw table), it is not used; either way the run's answer is right."""
    from mixpanel_alerts.detection import MANIFEST_FILE, forget_manifests

    spike = spike_scenario(sim, tmp_path)
    forget_manifests()
    first = run_cli(["run"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=2))))
    assert first.returncode == 0, output_of(first)
    (stored,) = (tmp_path / ".cache" / "mixpanel-alerts" / "dbt").glob(f"*/target/{MANIFEST_FILE}")
    stored.write_bytes(stored.read_bytes()[:1000])  # a write cut short by a crash
    log = dbt_log(tmp_path)

    cut = run_cli(["detect"], make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=30))), subprocess=True)
    assert cut.returncode == 0, output_of(cut)
    assert incident_status(db_path) == [("over",)]
    assert PARSES.search(dbt_log(tmp_path)[len(log) :])  # parsed again, and stored again
    assert len(stored.read_bytes()) > 100_000
    log = dbt_log(tmp_path)

    other = make_env(sim, DETECTION_NOW=iso(spike + timedelta(minutes=30)), BIGQUERY_TABLE="other_events")
    elsewhere = run_cli(["detect"], other, subprocess=True)
    assert elsewhere.returncode == 0, output_of(elsewhere)
    assert PARSES.search(dbt_log(tmp_path)[len(log) :])  # another raw table: another manifest


@pytest.mark.slow
def test_a_kept_manifest_serves_warehouses_named_alike_and_no_other(tmp_path: Path) -> None:
    """The DuckDB file's catalog is its stem, and the dataset names every relation: a manifest is
    reused for a file of the same name in another folder, never for another name or dataset."""
    from mixpanel_alerts.core.config import load_settings
    from mixpanel_alerts.detection import dbt_variables, forget_manifests, parsed_manifest, prepare_workdir

    def parsed(path: Path, **environ: str) -> Any:
        settings = load_settings({"DUCKDB_PATH": str(path), "MIXPANEL_PROJECT_ID": "1", **environ}, cwd=tmp_path)
        workdir = prepare_workdir(settings, tmp_path / "cache")
        with dbt_variables(settings):
            return parsed_manifest(workdir, settings)

    def names(manifest: Any) -> set[tuple[str, str]]:
        return {(node.database, node.schema) for node in manifest.nodes.values() if node.resource_type == "model"}

    forget_manifests()
    first = parsed(tmp_path / "one" / "mixpanel.duckdb")
    assert names(first) == {("mixpanel", "mixpanel_data")}
    assert parsed(tmp_path / "two" / "mixpanel.duckdb") is first
    other_name = parsed(tmp_path / "one" / "other.duckdb")
    assert names(other_name) == {("other", "mixpanel_data")}
    other_dataset = parsed(tmp_path / "one" / "mixpanel.duckdb", BIGQUERY_DATASET="elsewhere")
    assert names(other_dataset) == {("mixpanel", "elsewhere")}
    assert parsed(tmp_path / "one" / "mixpanel.duckdb") is first


@pytest.fixture(scope="module")
def plain_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Any]:
    """Settings, a working copy and its manifest, as dbt parses it for a plain `dbt build`."""
    from dbt.cli.main import dbtRunner

    from mixpanel_alerts.core.config import load_settings
    from mixpanel_alerts.detection import dbt_arguments, dbt_variables, prepare_workdir

    directory = tmp_path_factory.mktemp("plain")
    settings = load_settings(
        {"DUCKDB_PATH": str(directory / "mixpanel.duckdb"), "MIXPANEL_PROJECT_ID": "1"}, cwd=directory
    )
    workdir = prepare_workdir(settings, directory / "cache")
    with dbt_variables(settings):
        parsed = dbtRunner().invoke(["parse", "--quiet", *dbt_arguments(workdir)])
    assert parsed.success, parsed.exception
    return settings, workdir, parsed.result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("detection_now", "literal"),
    [
        ("2026-03-01T10:30:15+02:00", "2026-03-01 08:30:15"),
        ("2026-03-01T10:30:15Z", "2026-03-01 10:30:15"),
        ("2026-03-01 10:30:15", "2026-03-01 10:30:15"),
    ],
    ids=["offset", "zulu", "no-zone-is-utc"],
)
def test_a_plain_dbt_run_reads_detection_now_as_the_product_does(
    plain_project: tuple[Any, Path, Any], detection_now: str, literal: str
) -> None:
    """An analyst's `DETECTION_NOW=… dbt build` pins the moment as the CLI does (ISO 8601, UTC
    unless it says)."""
    import os

    from dbt.cli.main import dbtRunner

    from mixpanel_alerts.detection import dbt_arguments, dbt_variables

    settings, workdir, manifest = plain_project
    with dbt_variables(settings):
        os.environ["DETECTION_NOW"] = detection_now  # dbt_variables puts it back as it was
        result = dbtRunner(manifest=manifest).invoke(
            ["compile", "--inline", "select {{ detection_now() }} as now", "--quiet", *dbt_arguments(workdir)]
        )
    assert result.success, result.exception
    (compiled,) = result.result.results
    assert re.search(rf"cast\('{literal}' as\s+timestamp with time zone\s*\)", compiled.node.compiled_code)
