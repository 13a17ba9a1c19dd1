"""The submission lifecycle as a declared transition table.

Who may move a submission where is data here, checked in one place; storage records every move
as an append-only event (see `bot.storage.submissions.transition`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    REGISTERED = "registered"
    DECLARING = "declaring"
    SUBMITTED = "submitted"
    NEEDS_INFO = "needs_info"
    RECOMMENDED = "recommended"
    NOT_RECOMMENDED = "not_recommended"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class Actor(StrEnum):
    """The kind of party making a move; the permission check against scope happens in services."""

    OWNER = "owner"  # the resident (or a branch leader acting for them by proxy)
    BRANCH = "branch"  # branch leader, first-level review
    COMMUNE = "commune"  # commune officer
    SYSTEM = "system"  # deadlines, data deletion


@dataclass(frozen=True)
class Transition:
    source: State
    target: State
    actors: frozenset[Actor]
    note_required: bool = False


def _t(source: State, target: State, *actors: Actor, note_required: bool = False) -> Transition:
    return Transition(source, target, frozenset(actors), note_required)


S, A = State, Actor
TRANSITIONS: tuple[Transition, ...] = (
    _t(S.REGISTERED, S.DECLARING, A.OWNER),
    _t(S.DECLARING, S.SUBMITTED, A.OWNER),
    _t(S.SUBMITTED, S.NEEDS_INFO, A.BRANCH, A.COMMUNE, note_required=True),
    _t(S.NEEDS_INFO, S.SUBMITTED, A.OWNER),
    _t(S.SUBMITTED, S.RECOMMENDED, A.BRANCH),
    _t(S.SUBMITTED, S.NOT_RECOMMENDED, A.BRANCH, note_required=True),
    _t(S.RECOMMENDED, S.NEEDS_INFO, A.COMMUNE, note_required=True),
    _t(S.NOT_RECOMMENDED, S.NEEDS_INFO, A.COMMUNE, note_required=True),
    _t(S.SUBMITTED, S.APPROVED, A.COMMUNE),
    _t(S.RECOMMENDED, S.APPROVED, A.COMMUNE),
    _t(S.NOT_RECOMMENDED, S.APPROVED, A.COMMUNE),
    _t(S.SUBMITTED, S.REJECTED, A.COMMUNE, note_required=True),
    _t(S.RECOMMENDED, S.REJECTED, A.COMMUNE, note_required=True),
    _t(S.NOT_RECOMMENDED, S.REJECTED, A.COMMUNE, note_required=True),
    _t(S.REGISTERED, S.WITHDRAWN, A.OWNER, A.SYSTEM),
    _t(S.DECLARING, S.WITHDRAWN, A.OWNER, A.SYSTEM),
    _t(S.SUBMITTED, S.WITHDRAWN, A.OWNER, A.SYSTEM),
    _t(S.NEEDS_INFO, S.WITHDRAWN, A.OWNER, A.SYSTEM),
    _t(S.REGISTERED, S.EXPIRED, A.SYSTEM),
    _t(S.DECLARING, S.EXPIRED, A.SYSTEM),
    _t(S.NEEDS_INFO, S.EXPIRED, A.SYSTEM),
)

_TABLE: dict[tuple[State, State], Transition] = {(t.source, t.target): t for t in TRANSITIONS}

TERMINAL: frozenset[State] = frozenset({S.APPROVED, S.REJECTED, S.WITHDRAWN, S.EXPIRED})
# States in which the person may still change answers and photos.
EDITABLE: frozenset[State] = frozenset({S.REGISTERED, S.DECLARING, S.NEEDS_INFO})
# States waiting for a reviewer.
PENDING_REVIEW: frozenset[State] = frozenset({S.SUBMITTED, S.RECOMMENDED, S.NOT_RECOMMENDED})


class IllegalTransition(Exception):
    """Raised before anything changes when a move is not in the table."""

    def __init__(self, source: State, target: State, actor: Actor, reason: str) -> None:
        self.source, self.target, self.actor, self.reason = source, target, actor, reason
        super().__init__(f"cannot move a submission from {source} to {target} as {actor}: {reason}")


class NoteRequired(IllegalTransition):
    """The move is allowed, but only with a note saying why."""


def check(
    source: State | str, target: State | str, actor: Actor | str, note: str | None = None, *, ignore_note: bool = False
) -> Transition:
    """Return the transition if allowed, else raise IllegalTransition (nothing is changed).
    `ignore_note`: whether the move is possible at all, before the note is written."""
    source, target, actor = State(source), State(target), Actor(actor)
    transition = _TABLE.get((source, target))
    if transition is None:
        raise IllegalTransition(source, target, actor, "no such transition")
    if actor not in transition.actors:
        allowed = ", ".join(sorted(a.value for a in transition.actors))
        raise IllegalTransition(source, target, actor, f"only {allowed} may do this")
    if transition.note_required and not ignore_note and not (note and note.strip()):
        raise NoteRequired(source, target, actor, "a note is required")
    return transition


def targets_from(source: State | str) -> set[State]:
    return {t.target for t in TRANSITIONS if t.source == State(source)}
