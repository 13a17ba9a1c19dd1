"""Models and migrations against real databases (a SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import NullPool, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from bot.clock import VN_TZ
from bot.storage import db
from bot.storage.core import get_held
from bot.storage.db import current_revision, downgrade, head_revision, make_engine, migrate
from bot.storage.models import (
    Answer,
    Base,
    Campaign,
    CampaignDeadline,
    ChannelAccount,
    Conversation,
    CriteriaSetRecord,
    Evidence,
    Household,
    OrgUnit,
    OutboxMessage,
    Person,
    ProcessedMessage,
    RoleGrant,
    Submission,
)
from bot.storage.people import MemberSpec, Role, get_or_create_account, grant_role
from bot.storage.submissions import DuplicateRegistration, create_submission
from tests.support.db import fresh_postgres
from tests.support.records import household_headed_by, register

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))


async def test_migrations_from_empty_to_head_and_back(database_url):
    engine = make_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await migrate(engine)
        assert await current_revision(engine) == head_revision()
        tables = await _tables(engine)
        assert set(Base.metadata.tables) <= tables
        await migrate(engine)  # a second start is a no-op
        await downgrade(engine, "base")
        assert await _tables(engine) <= {"alembic_version"}
        await migrate(engine)
        assert set(Base.metadata.tables) <= await _tables(engine)
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_the_models(database_url):
    """Autogenerate finds nothing to do: migrations and models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


async def test_model_round_trip_keeps_aware_times_and_relations(app):
    async with app.sessions.begin() as session:
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "buon-ken"))
        members = [MemberSpec("H'Nga Niê", 1972, "spouse"), MemberSpec("Y Sơn Niê", 2010, "child")]
        head, household = await household_headed_by(session, branch, "Y Bih Niê", 1968, members, NOW, consent_at=NOW)
        account = await get_or_create_account(session, "zalo_bot", "z-1", "z-1", NOW)
        account.person_id = head.id
        session.add(Conversation(account_id=account.id, state="menu", data={"k": [1, "á"]}, updated_at=NOW))
        submission = await register(session, app.catalog.get("gd-qd448-2015"), branch, head, NOW, household=household)
        session.add(Answer(submission_id=submission.id, item_id="1.1", level="achieved", points=10, answered_at=NOW))
        session.add(
            Evidence(
                submission_id=submission.id,
                item_id="1.1",
                sha256="ab" * 32,
                path="ab/ab/x.jpg",
                size=10,
                mime="image/jpeg",
                source_channel="zalo_bot",
                source_message_id="m1",
                created_at=NOW,
            )
        )
        session.add(
            OutboxMessage(
                dedupe_key="k1",
                account_id=account.id,
                kind="reminder",
                payload={"x": 1},
                not_before=NOW,
                created_at=NOW,
            )
        )
        session.add(ProcessedMessage(channel="zalo_bot", message_id="m1", received_at=NOW))
        submission_id, household_id = submission.id, household.id

    async with app.sessions() as session:
        household = await session.get(Household, household_id)
        await session.refresh(household, ["members"])
        assert [(m.full_name, m.relation) for m in household.members] == [
            ("Y Bih Niê", "head"),
            ("H'Nga Niê", "spouse"),
            ("Y Sơn Niê", "child"),
        ]
        submission = await session.get(Submission, submission_id)
        assert submission.reference == f"GD-2026-{submission_id:06d}"
        assert submission.subject_key == f"h:{household_id}"
        assert submission.created_at == NOW and submission.created_at.tzinfo is not None
        conv = await session.scalar(select(Conversation))
        assert conv.data == {"k": [1, "á"]}
        deadline = await session.scalar(select(CampaignDeadline).where(CampaignDeadline.kind == "self_declaration"))
        assert deadline.due_on == date(2026, 11, 30)
        assert (await session.get(CriteriaSetRecord, "gd-qd448-2015")).data["id"] == "gd-qd448-2015"


async def test_unique_keys_hold(app):
    async def insert(make) -> None:
        async with app.sessions.begin() as session:
            session.add(make())

    await insert(lambda: ChannelAccount(channel="telegram", external_id="1", created_at=NOW))
    with pytest.raises(IntegrityError):
        await insert(lambda: ChannelAccount(channel="telegram", external_id="1", created_at=NOW))
    await insert(lambda: ProcessedMessage(channel="telegram", message_id="9", received_at=NOW))
    with pytest.raises(IntegrityError):
        await insert(lambda: ProcessedMessage(channel="telegram", message_id="9", received_at=NOW))
    async with app.sessions() as session:
        account_id = (await session.scalar(select(ChannelAccount))).id
    await insert(
        lambda: OutboxMessage(dedupe_key="same", account_id=account_id, kind="r", not_before=NOW, created_at=NOW)
    )
    with pytest.raises(IntegrityError):
        await insert(
            lambda: OutboxMessage(dedupe_key="same", account_id=account_id, kind="r", not_before=NOW, created_at=NOW)
        )


async def test_second_registration_for_same_title_and_year_is_refused(app):
    async with app.sessions.begin() as session:
        person = Person(full_name="Lê Văn Tám", birth_year=1980, created_at=NOW)
        session.add(person)
        await session.flush()
        campaign = await session.scalar(select(Campaign).where(Campaign.year == 2026))
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "thon-tan-lap"))
        kwargs = dict(
            campaign_id=campaign.id,
            year=2026,
            criteria_set=app.catalog.get("cd-qd244-2022"),
            branch_id=branch.id,
            person_id=person.id,
            household_id=None,
            actor_person_id=person.id,
            now=NOW,
        )
        first = await create_submission(session, **kwargs)
        with pytest.raises(DuplicateRegistration) as dup:
            await create_submission(session, **kwargs)
        assert dup.value.existing.reference == first.reference


async def test_naive_datetimes_are_refused(app):
    with pytest.raises(StatementError, match="naive datetime"):
        async with app.sessions.begin() as session:
            session.add(Person(full_name="Naive", created_at=datetime(2026, 1, 1)))


async def test_times_come_back_in_utc_whatever_zone_went_in(app):
    local = datetime(2026, 11, 20, 21, 30, tzinfo=VN_TZ)
    async with app.sessions.begin() as session:
        session.add(Person(full_name="Giờ Việt Nam", created_at=local))
    async with app.sessions() as session:
        person = await session.scalar(select(Person).where(Person.full_name == "Giờ Việt Nam"))
    assert person.created_at == local
    assert person.created_at.utcoffset() == timedelta(0)


async def test_roles_need_the_right_scope(app):
    async with app.sessions.begin() as session:
        person = Person(full_name="Cán Bộ Xã", created_at=NOW)
        session.add(person)
        await session.flush()
        commune = await session.scalar(select(OrgUnit).where(OrgUnit.code == "ea-tul"))
        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "buon-ken"))
        grant = await grant_role(session, person, Role.OFFICER, commune, granted_by=None, now=NOW)
        again = await grant_role(session, person, Role.OFFICER, commune, granted_by=None, now=NOW)
        assert grant.id == again.id
        with pytest.raises(ValueError, match="officer needs a commune"):
            await grant_role(session, person, Role.OFFICER, branch, granted_by=None, now=NOW)
        with pytest.raises(ValueError, match="leader needs a branch"):
            await grant_role(session, person, Role.LEADER, None, granted_by=None, now=NOW)
        await grant_role(session, person, Role.LEADER, branch, granted_by=None, now=NOW)
    async with app.sessions() as session:
        roles = sorted(g.role for g in await session.scalars(select(RoleGrant)))
    assert roles == ["leader", "officer"]


async def test_scope_of_leader_officer_and_admin(app):
    from bot.storage.people import branch_ids_in_scope, may_act_on_branch

    async with app.sessions.begin() as session:
        units = {u.code: u for u in await session.scalars(select(OrgUnit))}
        leader, officer, admin, resident = (Person(full_name=n, created_at=NOW) for n in ("Lê", "Cán", "Quản", "Dân"))
        session.add_all([leader, officer, admin, resident])
        await session.flush()
        await grant_role(session, leader, Role.LEADER, units["buon-ken"], granted_by=None, now=NOW)
        await grant_role(session, officer, Role.OFFICER, units["ea-tul"], granted_by=None, now=NOW)
        await grant_role(session, admin, Role.ADMIN, None, granted_by=None, now=NOW)
        branches = {u.id for u in units.values() if u.kind == "branch"}
        assert await branch_ids_in_scope(session, leader.id, Role.LEADER) == {units["buon-ken"].id}
        assert await branch_ids_in_scope(session, officer.id, Role.OFFICER) == branches
        assert await branch_ids_in_scope(session, officer.id, Role.LEADER) == set()
        assert await branch_ids_in_scope(session, admin.id, Role.OFFICER) is None
        assert await branch_ids_in_scope(session, resident.id, Role.LEADER) == set()
        assert not await may_act_on_branch(session, leader.id, Role.LEADER, units["thon-tan-lap"].id)
        assert await may_act_on_branch(session, admin.id, Role.LEADER, units["thon-tan-lap"].id)


async def test_database_errors_do_not_carry_personal_data(app):
    """An error logged while handling a message must not print the names and answers in it."""
    async with app.sessions.begin() as session:
        session.add(ChannelAccount(channel="telegram", external_id="zq-7731", created_at=NOW))
    with pytest.raises(IntegrityError) as caught:
        async with app.sessions.begin() as session:
            session.add(ChannelAccount(channel="telegram", external_id="zq-7731", created_at=NOW))
            session.add(Person(full_name="Nguyễn Thị Bí Mật", created_at=NOW))
    assert "zq-7731" not in str(caught.value) and "Bí Mật" not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)


async def test_a_database_with_a_district_moves_to_the_two_level_structure(tmp_path):
    """Issue 17: a database built before 1 July 2025's reform (province → district → commune) is
    migrated: the district row goes, its communes (and anything scoped to it) belong to the province."""
    from sqlalchemy import text

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        await migrate(engine, "0006_consent")
        async with engine.begin() as conn:
            now = "2025-05-01 00:00:00.000000"
            for unit_id, code, kind, parent in [
                (1, "dak-lak", "province", None),
                (2, "cu-mgar", "district", 1),
                (3, "ea-tul", "commune", 2),
                (4, "ea-kpam", "commune", 2),
                (5, "buon-ken", "branch", 3),
            ]:
                await conn.execute(
                    text(
                        "INSERT INTO org_units (id, code, kind, name, parent_id, position, created_at) "
                        "VALUES (:id, :code, :kind, :code, :parent, 0, :now)"
                    ),
                    {"id": unit_id, "code": code, "kind": kind, "parent": parent, "now": now},
                )
            await conn.execute(
                text("INSERT INTO people (id, full_name, locale, created_at) VALUES (1, 'Cán bộ', 'vi', :now)"),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO role_grants (person_id, role, scope_unit_id, granted_at) VALUES (1, 'officer', 2, :now)"
                ),
                {"now": now},
            )
        await migrate(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT code, kind, parent_id, official_code FROM org_units ORDER BY id"))
            ).all()
            scopes = (await conn.execute(text("SELECT scope_unit_id FROM role_grants"))).scalars().all()
        assert [tuple(r) for r in rows] == [
            ("dak-lak", "province", None, None),
            ("ea-tul", "commune", 1, None),
            ("ea-kpam", "commune", 1, None),
            ("buon-ken", "branch", 3, None),
        ]
        assert scopes == [1]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_pooled_connection_idle_too_long_is_pinged_and_replaced(monkeypatch):
    """Only connections idle for PING_AFTER_IDLE_SECONDS are pinged on checkout (storage/db.py);
    one the server dropped meanwhile is replaced before the statement runs."""
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    async with fresh_postgres() as url:
        engine = make_engine(url)
        async with engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        outside = make_engine(url, poolclass=NullPool)
        async with outside.connect() as connection:
            assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await outside.dispose()
        async with engine.connect() as connection:  # pinged, found dead, replaced: no error
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid
        await engine.dispose()


async def test_a_message_transaction_commits_rolls_back_and_always_gives_its_connection_back(app):
    """`db.transaction`, the one every inbound message runs in: what the block wrote is committed
    when it ends; nothing is when it raises or when the commit itself fails; and the connection
    (on SQLite also the process's write turn) is given back each time, so the next message goes
    ahead at once."""
    pool = app.engine.sync_engine.pool

    def message(message_id: str) -> ProcessedMessage:
        return ProcessedMessage(channel="test", message_id=message_id, received_at=NOW)

    async with db.transaction(app.sessions) as session:
        session.add(message("kept"))
    with pytest.raises(RuntimeError):
        async with db.transaction(app.sessions) as session:
            session.add(message("dropped"))
            await session.flush()
            raise RuntimeError("a bug in a handler")
    assert pool.checkedout() == 0
    with pytest.raises(IntegrityError):
        async with db.transaction(app.sessions) as session:
            session.add(message("kept"))  # the unique key fails at the commit's flush
    assert pool.checkedout() == 0
    async with asyncio.timeout(5), db.transaction(app.sessions) as session:
        session.add(message("next"))
    async with app.sessions() as session:
        stored = (await session.scalars(select(ProcessedMessage.message_id).order_by(ProcessedMessage.id))).all()
    assert stored == ["kept", "next"]
    assert pool.checkedout() == 0


async def test_get_held_answers_from_the_session_and_reads_what_it_does_not_hold(app):
    """`core.get_held`: a row the transaction already holds comes back without a statement; one it
    does not hold, or holds expired, is read as `session.get` would."""
    statements: list[str] = []
    event.listen(app.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    async with app.sessions.begin() as session:
        person = Person(full_name="Hoàng Thị Mai", birth_year=1975, created_at=NOW)
        session.add(person)
        await session.flush()
        person_id = person.id
        statements.clear()
        assert await get_held(session, Person, person_id) is person
        assert statements == []
        assert await get_held(session, Person, person_id + 1000) is None
        assert len(statements) == 1
        session.expire(person)
        again = await get_held(session, Person, person_id)
        assert len(statements) == 2
        assert again is person and again.full_name == "Hoàng Thị Mai"
        assert await get_held(session, Submission, person_id) is None  # another model, same id


class InTransaction:
    """For each statement on PostgreSQL: its first word, and whether the server had a
    transaction open once it ran (asyncpg's own view, through SQLAlchemy's adapter)."""

    def __init__(self, engine) -> None:
        self.seen: list[tuple[str, bool]] = []
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _after(self, conn, _cursor, statement: str, *_args) -> None:
        asyncpg_connection = conn.connection.dbapi_connection._connection
        self.seen.append((statement.split(None, 1)[0].upper(), asyncpg_connection.is_in_transaction()))


@pytest.mark.postgres
async def test_on_postgresql_a_message_transaction_begins_at_its_first_write(tmp_path):
    """`db.transaction` on PostgreSQL: reads run before BEGIN; the first write begins the
    transaction, so the writes still commit or roll back together; a SELECT that locks, or reads
    through a server-side cursor, begins it too; and one statement marked to run alone, when nothing else was written, runs without BEGIN
    or COMMIT, and nothing may be written after it. The connection goes back to the pool as it
    came (a plain transaction on it begins as usual)."""
    async with fresh_postgres(migrated=True) as url:
        engine = make_engine(url, pool_size=1, max_overflow=0)
        sessions = db.make_sessionmaker(engine)
        seen = InTransaction(engine)

        def message(message_id: str) -> ProcessedMessage:
            return ProcessedMessage(channel="test", message_id=message_id, received_at=NOW)

        async with db.transaction(sessions) as session:
            await session.scalar(select(func.count()).select_from(ProcessedMessage))
        assert seen.seen == [("SELECT", False)]

        seen.seen.clear()
        async with db.transaction(sessions) as session:
            await session.scalar(select(func.count()).select_from(ProcessedMessage))
            session.add(message("a"))
            await session.flush()
            await session.scalar(select(func.count()).select_from(ProcessedMessage))
        assert seen.seen == [("SELECT", False), ("INSERT", True), ("SELECT", True)]

        seen.seen.clear()
        with pytest.raises(RuntimeError):
            async with db.transaction(sessions) as session:
                session.add(message("b"))
                await session.flush()
                session.add(message("c"))
                await session.flush()
                raise RuntimeError("a bug after two writes")
        assert seen.seen == [("INSERT", True), ("INSERT", True)]

        seen.seen.clear()
        async with db.transaction(sessions) as session:
            await session.scalar(
                select(ProcessedMessage.id).where(ProcessedMessage.message_id == "a").with_for_update()
            )
        assert seen.seen == [("SELECT", True)]

        seen.seen.clear()
        async with db.transaction(sessions) as session:  # a server-side cursor needs one too
            streamed = await session.stream(select(ProcessedMessage.id).execution_options(yield_per=10))
            assert len([row async for row in streamed]) == 1
        assert seen.seen == [("SELECT", True)]

        alone = insert(ProcessedMessage).values(channel="test", message_id="d", received_at=NOW)
        alone = alone.execution_options(**{db.RUNS_ALONE: True})
        seen.seen.clear()
        async with db.transaction(sessions) as session:
            await session.scalar(select(func.count()).select_from(ProcessedMessage))
            await session.execute(alone)
        assert seen.seen == [("SELECT", False), ("INSERT", False)]
        with pytest.raises(RuntimeError, match="after the statement that ran"):
            async with db.transaction(sessions) as session:
                await session.execute(alone.values(message_id="e"))
                session.add(message("f"))
                await session.flush()

        async with sessions() as session:
            stored = (await session.scalars(select(ProcessedMessage.message_id).order_by(ProcessedMessage.id))).all()
            assert stored == ["a", "d", "e"]  # "e" ran alone and was committed as it ran
            seen.seen.clear()
            await session.scalar(select(func.count()).select_from(ProcessedMessage))
            assert seen.seen == [("SELECT", True)]  # an ordinary session: BEGIN as always
        await engine.dispose()
