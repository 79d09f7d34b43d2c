set dotenv-load := false

# list the recipes
default:
    @just --list

# the whole pipeline against the built-in simulator, no credentials needed (--config FILE: your rules)
demo *args:
    mixpanel-alerts demo {{args}}

# a Mixpanel export simulator to try your rules without Mixpanel; prints the variables to use (--help)
simulator *args:
    python -m mixpanel_alerts.simulator {{args}}

# collect, then detect and alert: once, for cron or CI
run:
    mixpanel-alerts run

# extract/load only: Mixpanel export into the raw table
collect:
    mixpanel-alerts collect

# dbt build of the detection models, then the alert step
detect:
    mixpanel-alerts detect

# ruff, ruff format, mypy, the import layers (import-linter) and sqlfluff (dbt templater, lower-case keywords)
lint:
    ruff check .
    ruff format --check .
    mypy
    lint-imports
    just lint-sql

# sqlfluff on the dbt models and macros, compiled by dbt: a scratch DuckDB file, its models built
# first (the rules written into it; a model's bounds are read from the models before it)
lint-sql:
    #!/usr/bin/env bash
    set -euo pipefail
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    export DUCKDB_PATH="$scratch/lint.duckdb" HOME="$scratch"
    mixpanel-alerts dbt -- run --quiet
    cd dbt_project && sqlfluff lint models

# 4 workers: faster here than 2, 6 or 8 on 2 cores, as tests wait on sleeps and sockets but more processes
# contend. TEST_TIMELINE=FILE writes each test's worker, end time and CPU seconds (where the time goes).
# lint, then the whole test suite; the BigQuery emulator started if need be, and stopped after if it was started here
test: lint
    #!/usr/bin/env bash
    set -euo pipefail
    eval "$(scripts/bq_emulator.sh start)"
    if [ "$BQ_EMULATOR_STARTED" = 1 ]; then trap 'scripts/bq_emulator.sh stop' EXIT; fi
    trap 'exit 130' INT
    trap 'exit 143' TERM
    python -m pytest -q -n 4 --dist worksteal

# the inner loop: the unit tests, no end-to-end run (no CLI run, dbt, simulator or emulator; under a minute)
test-fast:
    python -m pytest -q -m "not slow and not reliability" -n auto

# the product as users install it: the wheel, then the Dockerfile's install, each in a fresh venv without dev tools
install-check:
    scripts/install_check.sh

# fault-injection scenarios end to end (kills, Slack outages, overlaps, hostile input): one figure line each;
# with the few end-to-end fault tests of tests/ marked `reliability` (minutes of waiting, kept out of `just test`)
reliability:
    python -m pytest -m reliability tests -q -p no:cacheprovider -rA --durations=0

# write config/events_config.schema.json from the events configuration's model (a test keeps it in sync)
schema:
    python -c "import json; from mixpanel_alerts.core.events_config import events_config_schema as s; print(json.dumps(s(), indent=2, ensure_ascii=False))" > config/events_config.schema.json

# start the BigQuery emulator for the BigQuery tests: eval "$(just bq-emulator)"; stop it: just bq-emulator-stop
bq-emulator:
    @scripts/bq_emulator.sh start

# stop the BigQuery emulator `just bq-emulator` started
bq-emulator-stop:
    @scripts/bq_emulator.sh stop

# collect 1M events vs DuckDB's read_json; detect vs history and new data (--history-only); a run that finds nothing new (--run-only); 50 baseline vs threshold rules (--detect-only)
bench events="1000000":
    python -m mixpanel_alerts.bench --events {{events}}

# replay the labelled series (../shared/detection) through backfill and backtest, default baseline rules; the scorer's line
[positional-arguments]
quality *args:
    python scripts/quality.py "$@"

# vendor a release for the upgrade test (tests/test_upgrade.py): the package and dbt project at SHA
previous-release sha:
    git archive {{sha}} mixpanel_alerts alerts pipelines dbt_project | gzip -9 > tests/fixtures/previous_release.tar.gz
