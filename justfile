set dotenv-load := false

# list the recipes
default:
    @just --list

# extract/load only: Mixpanel export into the raw table
collect:
    mixpanel-alerts collect

# dbt build of the detection models
detect:
    mixpanel-alerts detect

# ruff, ruff format, mypy and sqlfluff (dbt models, lower-case keywords)
lint:
    ruff check .
    ruff format --check .
    mypy
    cd dbt_project && sqlfluff lint models macros

# lint, then the whole test suite
test: lint
    python -m pytest -q

# collect 1M events from the simulator vs DuckDB's own read_json of the same file
bench events="1000000":
    python -m mixpanel_alerts.bench --events {{events}}
