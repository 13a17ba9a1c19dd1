#!/usr/bin/env bash
# One command to set up and run the bot, one to set up and run the tests.
#   ./dev.sh run    creates .venv, installs, loads the example commune, starts the bot
#                   (the terminal chat unless a channel token is configured in the environment or .env)
#   ./dev.sh test   creates .venv, installs, runs the fast pass: every test not marked slow, on
#                   SQLite only, spread over the cores (extra args go to pytest)
#   ./dev.sh test --full
#                   what CI runs: the whole suite on SQLite, then again on PostgreSQL when a
#                   server answers (extra args go to pytest, both passes)
#   ./dev.sh lint   ruff (lint and format check) and mypy, as CI runs them
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}

setup() {
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    local stamp=.venv/.hoctap-installed
    local digest
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[test,postgres]"
        echo "$digest" > "$stamp"
    fi
}

postgres_answers() {
    .venv/bin/python - <<'PY'
import os, socket, sys
from sqlalchemy.engine import make_url
url = make_url(os.environ.get("HOCTAP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))
try:
    socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    run)
        setup
        # Only the first time: a calendar officers changed in chat (/lichnhac) is not overwritten.
        .venv/bin/hoctap init --if-new --commune "${HOCTAP_COMMUNE_FILE:-examples/commune.yaml}"
        exec .venv/bin/hoctap run "$@"
        ;;
    test)
        setup
        full=0
        if [ "${1:-}" = "--full" ]; then
            full=1
            shift
        fi
        if [ "$full" = "0" ]; then
            # SQLite only (the PostgreSQL cases of the storage tests run in --full), spread over
            # the machine's cores (pytest-xdist); `-n 0` runs it in one process.
            exec .venv/bin/python -m pytest -m "not slow and not postgres" -n auto "$@"
        fi
        # Both passes spread over the cores too, slow tests included.
        .venv/bin/python -m pytest -n auto "$@"
        # Second pass: every test on its own PostgreSQL database, when a server answers (CI makes
        # sure one does and sets HOCTAP_REQUIRE_PG=1, so there it never silently skips).
        if [ "${HOCTAP_REQUIRE_PG:-}" = "1" ] || postgres_answers; then
            HOCTAP_TEST_DB=postgres exec .venv/bin/python -m pytest -n auto "$@"
        fi
        echo "dev.sh: no PostgreSQL server answers; the PostgreSQL pass was skipped" >&2
        ;;
    lint)
        setup
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        .venv/bin/mypy
        ;;
    *)
        echo "usage: ./dev.sh run | ./dev.sh test [--full] [pytest args] | ./dev.sh lint" >&2
        exit 2
        ;;
esac
