"""Real bot processes for reliability tests and bench/chaos.py: web workers started as an operator
starts them (`python -m bot run --role web`, configured by environment variables for Telegram
webhooks against a FakeBotApi on 127.0.0.1), and dispatcher children (tests/support/dispatch_child.py).
Both can be stopped cleanly or killed with SIGKILL.

    worker = await WebWorker.start(db_url, fake, tmp_path / "w1")
    response = await worker.post(update)        # Telegram's side of a webhook delivery
    await worker.kill()                          # kill -9: no cleanup of any kind
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_SIGNING_SECRET
from tests.fakes.telegram_bot_api import TOKEN, FakeBotApi
from tests.support.processes import free_port, start_module, with_checkout_on_path

WEBHOOK_SECRET = "s3cret_for-the-tests"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def worker_env(db_url: str, fake: FakeBotApi, evidence_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **with_checkout_on_path(),
        "DATABASE_URL": db_url,
        "EVIDENCE_DIR": str(evidence_dir),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "TELEGRAM_API_FILE_URL": fake.file_url,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SIGNING_SECRET": TEST_SIGNING_SECRET,
        "TELEGRAM_CHAT_RATE_PER_SECOND": "0",
        "TELEGRAM_RATE_PER_SECOND": "0",
        "TELEGRAM_READ_TIMEOUT": "30",
        "TELEGRAM_SEND_RETRIES": "2",
        # A killed worker's unconfirmed replies are resent to a redelivery after this (not 2 minutes).
        "REPLY_LEASE_SECONDS": "2",
        **extra,
    }


@dataclass
class WebWorker:
    """`python -m bot run --role web` in its own process, serving the Telegram webhook."""

    process: asyncio.subprocess.Process
    port: int
    folder: Path
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/telegram/webhook"

    @classmethod
    async def start(
        cls,
        db_url: str,
        fake: FakeBotApi,
        folder: Path,
        evidence_dir: Path,
        *,
        name: str = "web",
        timeout: float = 60,
        **env: str,
    ) -> WebWorker:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = folder / f"{name}-{port}.log"
        log = open(log_path, "ab")
        environment = worker_env(
            db_url, fake, evidence_dir, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", WEB_PORT=str(port), **env
        )
        process = await start_module(
            "bot", "run", "--role", "web", cwd=folder, env=environment, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        worker = cls(process, port, folder, log_path, log)
        await worker._wait_ready(timeout)
        return worker

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if (await client.get(self.url + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    await self.kill()
                    raise TimeoutError(f"worker did not start:\n{self.log()}")
                await asyncio.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def post(
        self, update: dict[str, Any] | bytes, *, secret: str | None = WEBHOOK_SECRET, timeout: float = 60
    ) -> httpx.Response:
        """Deliver one update (or raw bytes) as Telegram does; raises httpx.TransportError when the
        worker dies before answering."""
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await client.post(self.webhook_url, content=body, headers=headers)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def kill(self) -> None:
        """kill -9."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self._close_log()

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as systemd stops a unit; returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                await self.kill()
        self._close_log()
        return self.process.returncode or 0

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class DispatchChild:
    """tests/support/dispatch_child.py in its own process."""

    process: asyncio.subprocess.Process
    name: str
    lines: list[str] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        db_url: str,
        fake: FakeBotApi,
        folder: Path,
        *,
        name: str,
        shift: float = 0.0,
        rate: float = 20.0,
        lease: int = 10,
        go_file: Path | None = None,
        timeout: float = 60,
    ) -> DispatchChild:
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            "--db",
            db_url,
            "--api",
            fake.base_url,
            "--file-api",
            fake.file_url,
            "--evidence",
            str(folder / "evidence"),
            "--worker",
            name,
            "--shift",
            str(shift),
            "--rate",
            str(rate),
            "--lease",
            str(lease),
        ]
        if go_file is not None:
            args += ["--go-file", str(go_file)]
        process = await start_module("tests.support.dispatch_child", *args, cwd=folder, env=with_checkout_on_path())
        child = cls(process, name)
        await child.expect("READY", timeout)
        return child

    async def expect(self, prefix: str, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not raw:
                err = await self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(f"{self.name} ended before {prefix!r}:\n{err.decode(errors='replace')[-4000:]}")
            line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    async def finish(self, timeout: float = 60) -> dict[str, int]:
        """Wait for the child to run out of work; its report totals."""
        line = await self.expect("DONE", timeout)
        await asyncio.wait_for(self.process.wait(), timeout)
        return json.loads(line[5:])

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
