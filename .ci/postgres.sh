# shellcheck shell=bash
# Sourced by .ci/run (bash, set -euo pipefail): a throwaway PostgreSQL 15 cluster for the ledger
# tests. Installs Debian's postgresql when missing, starts a cluster in a temp dir owned by the
# `postgres` user (PostgreSQL refuses to run as root) on 127.0.0.1 and a free port, waits until it
# accepts connections, exports UNLEARNREC_TEST_PG_URL, and stops the cluster on exit (EXIT trap).
#
# Standalone check:  bash -c 'set -euo pipefail; source .ci/postgres.sh; env | grep PG_URL'
# An UNLEARNREC_TEST_PG_URL already set (e.g. a CI service database) is used as it is.

PG_BIN=/usr/lib/postgresql/15/bin

_pg_say() { echo "[ci/postgres] $*" >&2; }

# Run a PostgreSQL binary as `postgres` when we are root, as ourselves otherwise; from inside the
# cluster dir, so that `postgres` never needs access to the current directory.
_pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

_pg_stop() {
    local rc=$?
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ]; then
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR" || true
        _pg_say "cluster stopped"
    fi
    return "$rc"
}

_pg_free_port() {
    python3 - "${1:-55432}" <<'PY'
import socket
import sys

start = int(sys.argv[1])
for port in range(start, start + 200):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    sys.exit(f"no free port in {start}..{start + 199}")
PY
}

_pg_start() {
    if [ -n "${UNLEARNREC_TEST_PG_URL:-}" ]; then
        _pg_say "using the given UNLEARNREC_TEST_PG_URL"
        return 0
    fi
    local t0=$SECONDS
    if [ ! -x "$PG_BIN/initdb" ]; then
        if [ "$(id -u)" != 0 ]; then
            _pg_say "PostgreSQL 15 missing and not root: the PostgreSQL ledger tests will skip"
            return 0
        fi
        _pg_say "installing postgresql (Debian)"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
        _pg_say "installed in $((SECONDS - t0)) s"
    fi
    t0=$SECONDS
    PG_PORT=$(_pg_free_port "${UNLEARNREC_TEST_PG_PORT:-55432}")
    PG_DIR=$(mktemp -d /tmp/unlearnrec-pg.XXXXXX)
    chmod 700 "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
    trap _pg_stop EXIT
    _pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U app --auth=trust \
        --no-locale --encoding=UTF8 >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; return 1; }
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR" -w -t 60 start >/dev/null ||
        { cat "$PG_DIR/server.log" >&2; return 1; }
    local i
    for i in $(seq 1 60); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U app -d postgres && break
        [ "$i" = 60 ] && { _pg_say "not accepting connections"; cat "$PG_DIR/server.log" >&2; return 1; }
        sleep 0.5
    done
    export UNLEARNREC_TEST_PG_URL="postgresql+psycopg://app@127.0.0.1:$PG_PORT/postgres"
    _pg_say "cluster up on 127.0.0.1:$PG_PORT in $((SECONDS - t0)) s ($PG_DIR)"
}

_pg_start
