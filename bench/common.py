"""Pieces the benchmarks share: the fake Telegram Bot API in its own process, and what a
person types through a whole conversation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# What a person types, from first contact to a submitted declaration (answers by number):
# greeting, consent, Công dân học tập, name, birth year, branch, confirm, start declaring,
# then each of the ten items "Đạt" and "Không có ảnh", then "Nộp hồ sơ".
SCRIPT = ["xin chào", "1", "1", "Nguyễn Văn An", "1980", "2", "1", "1"] + ["1", "1"] * 10 + ["1", "1"]
PHOTO = object()  # stands for "sends a photo" in a script
# The same conversation with a photo for the first item: "Đạt", a photo, then "Xong".
SCRIPT_WITH_PHOTO = SCRIPT[:9] + [PHOTO] + SCRIPT[9:]


class FakeServer:
    """`tests/fakes/telegram_bot_api.py` run in a process of its own (its work is not counted),
    driven through its `/_control/*` endpoints."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.telegram_bot_api", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip() if self.process.stdout else ""
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"fake Bot API did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def inject(self, updates: list[dict]) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(f"{self.base}/_control/inject", json={"updates": updates})
            response.raise_for_status()

    async def add_file(self, data: bytes) -> dict:
        """Store a file a person sends; returns the fields to put in the update (file_id, …)."""
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(f"{self.base}/_control/file", content=data)
            response.raise_for_status()
            return response.json()

    async def stats(self) -> dict:
        async with httpx.AsyncClient(timeout=60) as client:
            return (await client.get(f"{self.base}/_control/stats")).json()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
