"""One scheduler among several processes: election, exclusion, takeover."""

from __future__ import annotations

from sqlalchemy import text

from bot.ops.leader import FileLock, LeaderElection, PostgresAdvisoryLock, lock_for
from bot.storage.db import make_engine


def _election(lock, log: list[str], name: str) -> LeaderElection:
    async def elected() -> None:
        log.append(f"{name} up")

    async def demoted() -> None:
        log.append(f"{name} down")

    return LeaderElection(lock, elected, demoted, interval=3600)  # rounds are stepped by hand


async def test_only_one_leader_and_takeover_after_a_clean_stop(database_url, tmp_path):
    engine_a, engine_b = make_engine(database_url), make_engine(database_url)
    log: list[str] = []
    first = _election(lock_for(engine_a, database_url), log, "a")
    second = _election(lock_for(engine_b, database_url), log, "b")
    try:
        await first.start()
        await second.start()
        assert (first.is_leader, second.is_leader) == (True, False)
        await second.step()
        assert not second.is_leader
        await first.stop()
        await second.step()
        assert second.is_leader
        assert log == ["a up", "a down", "b up"]
    finally:
        await first.stop()
        await second.stop()
        await engine_a.dispose()
        await engine_b.dispose()


async def test_takeover_when_the_leaders_connection_dies(database_url):
    if database_url.startswith("sqlite"):
        return  # the file lock dies with the process; covered by the kill -9 reliability test
    engine_a, engine_b, admin = make_engine(database_url), make_engine(database_url), make_engine(database_url)
    log: list[str] = []
    lock_a = PostgresAdvisoryLock(engine_a)
    first = _election(lock_a, log, "a")
    second = _election(PostgresAdvisoryLock(engine_b), log, "b")
    try:
        await first.start()
        assert first.is_leader
        pid = await lock_a._conn.scalar(text("SELECT pg_backend_pid()"))
        async with admin.connect() as conn:  # the server drops the leader's session, as on a crash
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await second.step()
        assert second.is_leader
        await first.step()  # the old leader notices and steps down
        assert not first.is_leader
        assert log == ["a up", "b up", "a down"]
    finally:
        await first.stop()
        await second.stop()
        for engine in (engine_a, engine_b, admin):
            await engine.dispose()


async def test_file_lock_excludes_a_second_holder(tmp_path):
    a, b = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    assert await a.try_acquire()
    assert not await b.try_acquire()
    await a.release()
    assert await b.try_acquire()
    await b.release()
