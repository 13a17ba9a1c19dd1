"""Real `python -m …` subprocesses for the tests: the bot as an operator starts it (`hoctap run`,
`hoctap init`, …) or a test's own child module, each in its own folder and environment.

    process = await start_module("bot", "run", "--role", "web", cwd=tmp_path, env=bot_env(tmp_path))
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

PIPE = asyncio.subprocess.PIPE
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on (for a child that binds it itself)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def with_checkout_on_path(**extra: str) -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH (a child run from another
    folder imports `bot` and `tests` from here), plus `extra`."""
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def bot_env(folder: Path, database: str = "run.db", **extra: str) -> dict[str, str]:
    """This process's environment with a SQLite database and the evidence folder in `folder`, plus `extra`."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / database}",
        "EVIDENCE_DIR": str(folder / "evidence"),
        **extra,
    }


async def start_module(
    module: str, *args: str, cwd: Path, env: dict[str, str], stdout: Any = PIPE, stderr: Any = PIPE
) -> asyncio.subprocess.Process:
    """`python -m module args…` in `cwd`, its output piped unless `stdout`/`stderr` say otherwise."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=cwd, env=env, stdout=stdout, stderr=stderr
    )
