#!/usr/bin/env bash
# Install (once) and start the BigQuery emulator (PyPI package `bqemulator`, DuckDB-backed) in its
# own virtualenv, on 127.0.0.1:${BQ_EMULATOR_PORT:-9050}. Prints the export line for the tests:
#   eval "$(scripts/bq_emulator.sh start)"     # sets BIGQUERY_EMULATOR_HOST
#   scripts/bq_emulator.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.bqemu-venv
port=${BQ_EMULATOR_PORT:-9050}
grpc_port=$((port + 10))
pidfile=$venv/emulator.pid

install() {
    if [ ! -x "$venv/bin/bqemulator" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet bqemulator "duckdb==1.5.5" "duckdb-extension-spatial==1.5.5" numpy >&2
        # the emulator loads DuckDB's spatial extension at start and cannot download it here:
        # install it from the wheel's own file
        "$venv/bin/python" - >&2 <<'PY'
import glob, os, duckdb, duckdb_extension_spatial
root = os.path.dirname(duckdb_extension_spatial.__file__)
duckdb.connect().execute(f"INSTALL '{glob.glob(root + '/extensions/v1.5.5/**/spatial.duckdb_extension', recursive=True)[0]}'")
PY
    fi
}

case "${1:-start}" in
    start)
        install
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "export BIGQUERY_EMULATOR_HOST=http://127.0.0.1:$port"
            exit 0
        fi
        "$venv/bin/bqemulator" start --rest-port "$port" --grpc-port "$grpc_port" --project test-project \
            > "$venv/emulator.log" 2>&1 &
        echo $! > "$pidfile"
        for _ in $(seq 1 60); do
            if curl -fsS "http://127.0.0.1:$port/bigquery/v2/projects/test-project/datasets" > /dev/null 2>&1; then
                echo "export BIGQUERY_EMULATOR_HOST=http://127.0.0.1:$port"
                exit 0
            fi
            sleep 1
        done
        echo "the BigQuery emulator did not start; see $venv/emulator.log" >&2
        exit 1
        ;;
    stop)
        if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
