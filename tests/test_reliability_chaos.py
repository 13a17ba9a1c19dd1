"""bench/chaos.py with minimal parameters: two people declare through two web worker processes
that get killed every second or so while the platform answers some sends with 5xx."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

# Worker processes killed at random: in the full run (./dev.sh test --full), not the fast pass.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


async def test_chaos_run_loses_and_doubles_nothing(suite_db, tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "chaos.py"),
        "--people",
        "2",
        "--duration",
        "60",
        "--kill-min",
        "1.5",
        "--kill-max",
        "3",
        "--fail-rate",
        "0.3",
        "--first-kill-after",
        "20",
        "--seed",
        "3",
        "--database-url",
        suite_db,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    report = out.decode(errors="replace")
    assert process.returncode == 0, report
    assert "submitted 2/2, photos 2/2, lost 0" in report
    assert "invariants hold" in report and "beyond that rule 0, updates unanswered 0" in report
    kills = int(report.split("  kills ")[1].split()[0])
    assert kills >= 1, report
