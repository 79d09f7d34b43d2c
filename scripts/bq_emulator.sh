#!/usr/bin/env bash
# Install (once) and start the BigQuery emulator (PyPI package `bqemulator`, DuckDB-backed) in its
# own virtualenv, on 127.0.0.1:${BQ_EMULATOR_PORT:-9050}. Prints the export lines for the tests:
#   eval "$(scripts/bq_emulator.sh start)"     # sets BIGQUERY_EMULATOR_HOST, and BQ_EMULATOR_STARTED:
#                                              # 1 if this call started it, 0 if one was already answering
#   scripts/bq_emulator.sh stop                # stops the one `start` started (its pid file)
# A caller that stops only what it started:
#   eval "$(scripts/bq_emulator.sh start)"
#   if [ "$BQ_EMULATOR_STARTED" = 1 ]; then trap 'scripts/bq_emulator.sh stop' EXIT; fi
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.bqemu-venv
port=${BQ_EMULATOR_PORT:-9050}
grpc_port=$((port + 10))
# one pid file (and log) per port: BQ_EMULATOR_PORT=9150 runs a second one beside the default
pidfile=$venv/emulator${BQ_EMULATOR_PORT:+-$port}.pid
log=$venv/emulator${BQ_EMULATOR_PORT:+-$port}.log

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

url=http://127.0.0.1:$port
answers() {
    curl -fsS "$url/bigquery/v2/projects/test-project/datasets" > /dev/null 2>&1
}

# the pid in the pid file, if that process is still the emulator (not a stale file, not a reused pid)
running_pid() {
    [ -f "$pidfile" ] || return 1
    local pid
    pid=$(cat "$pidfile")
    ps -p "$pid" -o args= 2>/dev/null | grep -q bqemulator && echo "$pid"
}

stop() {
    local pid
    if pid=$(running_pid); then
        kill "$pid" 2>/dev/null || true
        # it holds about a gigabyte: wait until it is gone, then make sure
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

case "${1:-start}" in
    start)
        install
        # one already answering (started earlier, by anyone): use it, and leave it to whoever started it
        if answers || running_pid > /dev/null; then
            for _ in $(seq 1 60); do
                if answers; then
                    printf 'export BIGQUERY_EMULATOR_HOST=%s\nexport BQ_EMULATOR_STARTED=0\n' "$url"
                    exit 0
                fi
                sleep 1
            done
            echo "a BigQuery emulator is running (pid $(cat "$pidfile")) but does not answer on $url" >&2
            exit 1
        fi
        "$venv/bin/bqemulator" start --rest-port "$port" --grpc-port "$grpc_port" --project test-project \
            > "$log" 2>&1 &
        echo $! > "$pidfile"
        for _ in $(seq 1 60); do
            if answers; then
                printf 'export BIGQUERY_EMULATOR_HOST=%s\nexport BQ_EMULATOR_STARTED=1\n' "$url"
                exit 0
            fi
            sleep 1
        done
        echo "the BigQuery emulator did not start; see $log" >&2
        stop
        exit 1
        ;;
    stop)
        stop
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
