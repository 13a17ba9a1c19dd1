"""Smoke test of bench/workers.py: real `hoctap run --role web` processes behind the Telegram
webhook, a person's updates alternating between two workers, every declaration submitted.

The benchmark's figures are not checked (benchmarks are scripts); what is checked is that the
script runs, that two workers on one database share the work without a failed update, and that
it says so. The SQLite pass of the suite runs the SQLite configurations, the PostgreSQL pass
(HOCTAP_TEST_DB=postgres) the PostgreSQL ones, so `./dev.sh test` runs each once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SUITE_DB
from tests.support.db import PG_URL, REQUIRE_PG, pg_available

ROOT = Path(__file__).resolve().parent.parent
PASS = "postgres" if SUITE_DB == "postgres" else "sqlite"


@pytest.mark.slow
@pytest.mark.parametrize(
    "configs",
    [
        pytest.param("pg1,pg2", id="postgres", marks=pytest.mark.postgres)
        if PASS == "postgres"
        else pytest.param("sqlite1,sqlite2", id="sqlite")
    ],
)
async def test_bench_workers_quick(configs):
    if PASS == "postgres" and not await pg_available():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (HOCTAP_REQUIRE_PG=1) but {PG_URL} does not answer")
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "bench/workers.py", "--quick", "--configs", configs, "--database-url", PG_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "skipped" not in output, output  # the PostgreSQL configurations really ran
    summary = re.search(r"^RESULT (.*)$", result.stdout, re.MULTILINE)
    assert summary, output
    assert summary.group(1).split()[:2] == ["all_submitted=yes", "failures=0"], output
    assert summary.group(1).split()[3:] == ["log_errors=0", "extra_replies=0", "ok=yes"], output
    for name in configs.split(","):
        workers = 2 if name.endswith("2") else 1
        database = "PostgreSQL" if name.startswith("pg") else "SQLite"
        row = f"| {database} × {workers} worker{'s' if workers > 1 else ''} |"
        assert row in result.stdout, output
        assert re.search(rf"round 1 {name}\s.*submitted 2/2, 503 re-posted \d+, failed 0", result.stdout), output
    assert elapsed < 60, f"the quick run took {elapsed:.0f} s"
