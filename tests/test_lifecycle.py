"""The submission state machine: every legal move, every illegal one, and its audit trail."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from bot.domain import lifecycle
from bot.domain.lifecycle import TRANSITIONS, Actor, IllegalTransition, State
from bot.storage.models import Person, Submission, SubmissionEvent
from bot.storage.submissions import transition
from tests.support.records import register

LEGAL = {(t.source, t.target, actor) for t in TRANSITIONS for actor in t.actors}


def _note(source: State, target: State) -> str | None:
    return "lý do" if lifecycle._TABLE[(source, target)].note_required else None


@pytest.mark.parametrize(("source", "target", "actor"), sorted(LEGAL))
def test_legal_moves_are_allowed(source, target, actor):
    assert lifecycle.check(source, target, actor, _note(source, target)).target == target


ILLEGAL = [(s, t, a) for s, t, a in itertools.product(State, State, Actor) if (s, t, a) not in LEGAL]


def test_every_other_combination_is_refused():
    assert len(ILLEGAL) == len(State) ** 2 * len(Actor) - len(LEGAL)
    for source, target, actor in ILLEGAL:
        with pytest.raises(IllegalTransition):
            lifecycle.check(source, target, actor, "note")


def test_decisions_that_need_a_reason_refuse_an_empty_note():
    with pytest.raises(IllegalTransition, match="a note is required"):
        lifecycle.check(State.SUBMITTED, State.REJECTED, Actor.COMMUNE, "  ")
    with pytest.raises(IllegalTransition, match="only branch, commune may do this"):
        lifecycle.check(State.SUBMITTED, State.NEEDS_INFO, Actor.OWNER, "more")


def test_terminal_states_have_no_way_out():
    for state in lifecycle.TERMINAL:
        assert lifecycle.targets_from(state) == set()


async def _submission(app, state: State) -> Submission:
    async with app.sessions.begin() as session:
        person = Person(full_name="Nguyễn Thị Hoa", birth_year=1975, created_at=app.clock.now())
        session.add(person)
        await session.flush()
        from bot.storage.models import OrgUnit

        branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "thon-ha-luong"))
        submission = await register(session, app.catalog.get("cd-qd244-2022"), branch, person, app.clock.now())
        submission.state = state.value
    return submission


async def test_every_legal_move_writes_one_event_in_the_database(app):
    for source, target, actor in sorted(LEGAL):
        created = await _submission(app, source)
        async with app.sessions.begin() as session:
            submission = await session.get(Submission, created.id)
            await transition(
                session,
                submission,
                target,
                actor=actor,
                actor_person_id=submission.person_id,
                note=_note(source, target),
                now=app.clock.now(),
            )
        async with app.sessions() as session:
            submission = await session.get(Submission, created.id)
            events = list(
                await session.scalars(
                    select(SubmissionEvent)
                    .where(SubmissionEvent.submission_id == created.id)
                    .order_by(SubmissionEvent.id)
                )
            )
        assert submission.state == target.value
        assert [(e.from_state, e.to_state) for e in events] == [(None, "registered"), (source.value, target.value)]
        assert events[-1].actor_kind == actor.value
        assert events[-1].at.tzinfo is not None


async def test_illegal_moves_change_nothing_in_the_database(app):
    created = await _submission(app, State.SUBMITTED)
    for target, actor, note in [
        (State.DECLARING, Actor.OWNER, None),
        (State.APPROVED, Actor.BRANCH, None),
        (State.REJECTED, Actor.COMMUNE, None),
        (State.EXPIRED, Actor.SYSTEM, None),
    ]:
        with pytest.raises(IllegalTransition):
            async with app.sessions.begin() as session:
                submission = await session.get(Submission, created.id)
                await transition(
                    session, submission, target, actor=actor, actor_person_id=None, note=note, now=app.clock.now()
                )
    async with app.sessions() as session:
        submission = await session.get(Submission, created.id)
        count = await session.scalar(
            select(func.count()).select_from(SubmissionEvent).where(SubmissionEvent.submission_id == created.id)
        )
    assert submission.state == State.SUBMITTED.value
    assert count == 1  # only the registration event


async def test_concurrent_decisions_cannot_both_win(app):
    from sqlalchemy.orm.exc import StaleDataError

    created = await _submission(app, State.SUBMITTED)
    first = app.sessions()
    second = app.sessions()
    try:
        # The second reviewer opens the submission, then the first decides and commits.
        b = await second.get(Submission, created.id)
        await second.commit()
        a = await first.get(Submission, created.id)
        await transition(
            first, a, State.APPROVED, actor=Actor.COMMUNE, actor_person_id=None, note=None, now=app.clock.now()
        )
        await first.commit()
        with pytest.raises(StaleDataError):
            await transition(
                second, b, State.REJECTED, actor=Actor.COMMUNE, actor_person_id=None, note="x", now=app.clock.now()
            )
            await second.commit()
    finally:
        await first.close()
        await second.close()
    async with app.sessions() as session:
        assert (await session.get(Submission, created.id)).state == State.APPROVED.value
