#!/usr/bin/env bash
# A throwaway local MLflow tracking server, for `acbench export mlflow` and
# its integration test (core/cli/tests/mlflow.rs).
#
#   scripts/mlflow-local.sh start DIR   start a server whose state lives in DIR
#   scripts/mlflow-local.sh stop DIR    stop it (its whole process group)
#
# start: makes DIR, a venv with mlflow from PyPI (DIR/venv, or $MLFLOW_VENV
# when set: an existing one is reused, a missing one created there), picks a
# free port on 127.0.0.1, runs `mlflow server` in a process group of its own
# with a SQLite backend (DIR/mlflow.db) and served artifacts (DIR/artifacts),
# waits until /health answers and writes DIR/mlflow.pid (the group leader's
# PID) and DIR/mlflow.url (http://127.0.0.1:PORT); prints the URL. The
# server's output goes to DIR/mlflow.log.
# $MLFLOW_VERSION pins the version installed into a new venv (default: the
# newest); $MLFLOW_START_TIMEOUT is how long to wait for /health (default
# 180 s: the first start creates the database, slow on a small machine).
#
# stop: sends SIGTERM to the process group in DIR/mlflow.pid (the server and
# its gunicorn/uvicorn workers and job runners), SIGKILL to whatever is left
# after 15 s, and removes DIR/mlflow.pid and DIR/mlflow.url. Stopping a DIR
# with no server is not an error; a group with no mlflow process in it (the
# PID reused since) is left alone.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
action=$1
dir=$2

# Whether any process of group $1 is alive.
group_alive() {
    pgrep -g "$1" >/dev/null 2>&1
}

stop() {
    local pidfile="$dir/mlflow.pid"
    [[ -f $pidfile ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    if [[ ! $pid =~ ^[0-9]+$ ]]; then
        echo "$pidfile does not hold a PID: '$pid'" >&2
        exit 1
    fi
    if group_alive "$pid" && ! pgrep -g "$pid" -f mlflow >/dev/null 2>&1; then
        echo "process group $pid runs no mlflow (the PID was reused?); not stopping it" >&2
    elif group_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            group_alive "$pid" || break
            sleep 0.1
        done
        if group_alive "$pid"; then
            echo "mlflow server (group $pid) still running after SIGTERM; sending SIGKILL" >&2
            kill -KILL -- "-$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                group_alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$pidfile" "$dir/mlflow.url"
}

free_port() {
    "$1" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/mlflow.pid ]] && group_alive "$(cat "$dir/mlflow.pid")"; then
        echo "a server already runs for $dir (PID $(cat "$dir/mlflow.pid")); stop it first" >&2
        exit 1
    fi
    local venv=${MLFLOW_VENV:-$dir/venv}
    if [[ ! -x $venv/bin/mlflow ]]; then
        echo "creating $venv with mlflow${MLFLOW_VERSION:+==$MLFLOW_VERSION} (a few minutes)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip >&2
        "$venv/bin/pip" install --quiet "mlflow${MLFLOW_VERSION:+==$MLFLOW_VERSION}" >&2
    fi
    local port url
    port=$(free_port "$venv/bin/python")
    url="http://127.0.0.1:$port"
    mkdir -p "$dir/artifacts"
    # setsid: the server leads a process group of its own, so that stop
    # reaches its workers too and nothing else.
    setsid "$venv/bin/mlflow" server \
        --host 127.0.0.1 --port "$port" --workers 1 \
        --backend-store-uri "sqlite:///$dir/mlflow.db" \
        --artifacts-destination "$dir/artifacts" \
        </dev/null >"$dir/mlflow.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/mlflow.pid"
    local timeout=${MLFLOW_START_TIMEOUT:-180}
    local deadline=$((SECONDS + timeout))
    until "$venv/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).read()' "$url" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "mlflow server exited before answering; the end of $dir/mlflow.log:" >&2
            tail -n 30 "$dir/mlflow.log" >&2
            stop
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "mlflow server did not answer $url/health within ${timeout}s; the end of $dir/mlflow.log:" >&2
            tail -n 30 "$dir/mlflow.log" >&2
            stop
            exit 1
        fi
        sleep 0.5
    done
    echo "$url" >"$dir/mlflow.url"
    echo "$url"
}

case $action in
start) start ;;
stop) stop ;;
*) usage ;;
esac
