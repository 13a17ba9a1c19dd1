"""Exactly one active scheduler among several processes, with takeover when it dies.

On PostgreSQL the leader holds a session-level advisory lock on a dedicated connection: if the
process dies, the server drops the connection and the lock with it, and another process takes over
at its next attempt. On SQLite (one machine by nature) an exclusive lock on a file beside the
database plays the same role; the kernel releases it when the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# Arbitrary constant naming the scheduler lock among the database's advisory locks.
SCHEDULER_LOCK_ID = 7_301_2027

Callback = Callable[[], Awaitable[None]]


class LeaderLock(Protocol):
    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class PostgresAdvisoryLock:
    def __init__(self, engine: AsyncEngine, lock_id: int = SCHEDULER_LOCK_ID) -> None:
        self.engine = engine
        self.lock_id = lock_id
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        conn = await self.engine.connect()
        try:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": self.lock_id})
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = await self._conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objid = :low AND classid = :high"
                ),
                {"low": self.lock_id & 0xFFFFFFFF, "high": self.lock_id >> 32},
            )
            await self._conn.commit()
            return bool(held)
        except Exception:
            log.warning("lost the connection holding the scheduler lock")
            await self._drop()
            return False

    async def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            await self._conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
            await self._conn.commit()
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_for(engine: AsyncEngine, database_url: str) -> LeaderLock:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresAdvisoryLock(engine)
    database = url.database or "hoctap.db"
    return FileLock(Path(f"{Path(database).expanduser().resolve()}.scheduler.lock"))


class LeaderElection:
    """Runs `on_elected` when this process becomes the leader and `on_demoted` when it stops being one."""

    name = "scheduler election"

    def __init__(self, lock: LeaderLock, on_elected: Callback, on_demoted: Callback, interval: float = 5.0) -> None:
        self.lock = lock
        self.on_elected = on_elected
        self.on_demoted = on_demoted
        self.interval = interval
        self.is_leader = False
        self._task: asyncio.Task | None = None
        self.elected = asyncio.Event()

    async def start(self) -> None:
        await self.step()
        self._task = asyncio.create_task(self._loop(), name="leader-election")

    async def step(self) -> None:
        """One round: try to become leader, or check that we still are."""
        if not self.is_leader:
            try:
                acquired = await self.lock.try_acquire()
            except Exception:
                log.exception("could not try the scheduler lock")
                return
            if acquired:
                self.is_leader = True
                self.elected.set()
                log.info("this process is now the scheduler")
                await self.on_elected()
        elif not await self.lock.still_held():
            self.is_leader = False
            self.elected.clear()
            log.warning("scheduler lock lost; stopping the scheduler here")
            await self.on_demoted()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.step()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.is_leader:
            self.is_leader = False
            await self.on_demoted()
        await self.lock.release()


class ElectedServices:
    """Services that must run in one process only (the scheduler and the dispatcher), started
    when this process is elected and stopped when it loses the election or shuts down."""

    def __init__(self, lock: LeaderLock, services: list, interval: float = 5.0) -> None:
        self.services = services
        self.name = "elected: " + " + ".join(s.name for s in services)
        self._running: list = []
        self.election = LeaderElection(lock, self._start_all, self._stop_all, interval)

    async def _start_all(self) -> None:
        for service in self.services:
            await service.start()
            self._running.append(service)

    async def _stop_all(self) -> None:
        while self._running:
            service = self._running.pop()
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)

    async def start(self) -> None:
        await self.election.start()

    async def stop(self) -> None:
        await self.election.stop()
