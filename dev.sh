#!/usr/bin/env bash
# One command to set up and run the bot, one to set up and run the tests.
#   ./dev.sh run    creates .venv, installs, loads the example commune, starts the bot
#                   (the terminal chat unless a channel token is configured in the environment or .env)
#   ./dev.sh test   creates .venv, installs, runs the whole test suite (extra args go to pytest)
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

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    run)
        setup
        .venv/bin/hoctap init --commune "${HOCTAP_COMMUNE_FILE:-examples/commune.yaml}"
        exec .venv/bin/hoctap run "$@"
        ;;
    test)
        setup
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh run | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
