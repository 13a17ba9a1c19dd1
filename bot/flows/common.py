"""Helpers several flows share: the person's submissions, their criteria, labels and deadlines."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bot.domain.criteria import CriteriaSet, Level
from bot.domain.labels import LEVEL_KEYS, STATE_KEYS
from bot.domain.lifecycle import EDITABLE, State
from bot.flows.context import Context, Input
from bot.messages import Choice
from bot.storage.core import get_held, hold
from bot.storage.models import CriteriaSetRecord, OrgUnit, Submission
from bot.storage.subjects import owns, submissions_for_person
from bot.text import clean_name, name_problem

Step = Callable[..., Awaitable[None]]


def state_label(ctx: Context, state: str) -> str:
    return ctx.t(STATE_KEYS[State(state)])


def level_label(ctx: Context, level: str) -> str:
    return ctx.t(LEVEL_KEYS[Level(level)])


async def criteria_of(ctx: Context, submission: Submission) -> CriteriaSet:
    """The set a submission was registered under; the database snapshot if the file is gone."""
    found = ctx.app.catalog.sets.get(submission.criteria_set_id)
    if found is not None:
        return found
    record = await ctx.session.get(CriteriaSetRecord, submission.criteria_set_id)
    if record is None:
        raise LookupError(f"criteria set {submission.criteria_set_id} is unknown")
    return CriteriaSet.model_validate(record.data)


def title_name(ctx: Context, criteria_set: CriteriaSet) -> str:
    return criteria_set.title_name.get(ctx.locale)


async def my_submissions(ctx: Context) -> list[Submission]:
    """The submissions of whom the conversation is about (a leader acting for someone: theirs)."""
    if ctx.subject is None:
        return []
    return await submissions_for_person(ctx.session, ctx.subject.id)


async def my_submission(ctx: Context, submission_id: int | None) -> Submission | None:
    """A submission by id, only if it belongs to whom the conversation is about (never anyone else's).

    Same rule as `submissions_for_person` (bot.storage.subjects), read by primary key: a step's
    handler and its next prompt both ask, and the second time the session already holds the row
    (kept alive until the transaction ends), so it costs no query."""
    subject = ctx.subject
    if submission_id is None or subject is None:
        return None
    submission = await get_held(ctx.session, Submission, submission_id)
    if submission is None or not await owns(ctx.session, submission, subject.id):
        return None
    hold(ctx.session, submission)
    return submission


async def editable_submissions(ctx: Context) -> list[Submission]:
    return [s for s in await my_submissions(ctx) if State(s.state) in EDITABLE]


def back_choice(ctx: Context) -> Choice:
    return Choice("back", ctx.t("common.back"))


def menu_choice(ctx: Context) -> Choice:
    return Choice("menu", ctx.t("common.to_menu"))


def unit_choices(units: Iterable[OrgUnit], prefix: str) -> list[Choice]:
    """A button for each branch, commune or province, by its name; its value is `prefix` and the
    unit's id ("b12": branch 12)."""
    return [Choice(f"{prefix}{unit.id}", unit.name) for unit in units]


def with_proxy_banner(ctx: Context, text: str) -> str:
    """Prefix a question with whom a branch leader is answering for, so nobody mixes people up."""
    if ctx.proxy and ctx.subject is not None:
        return ctx.t("proxy.banner", name=ctx.subject.full_name) + "\n" + text
    return text


def read_name(ctx: Context, inp: Input) -> str | None:
    """The name typed, cleaned; or None after asking again with an example of a valid name."""
    name = clean_name(inp.text or "")
    if name is None:
        # Say what is actually wrong: its length, or characters a name does not have.
        problem = name_problem(inp.text or "")
        if problem == "short":
            ctx.retry("reg.bad_name_short")
        elif problem == "long":
            ctx.retry("reg.bad_name_long", max=100)
        else:
            ctx.retry("reg.bad_name")
    return name


def found_by(find: Callable[[Context], Awaitable[tuple[Any, ...] | None]]) -> Callable[[Step], Step]:
    """For prompts and handlers that need what `find` looks up for the conversation (the
    submission at hand, the commune reported on): called with its parts after their other
    arguments, and only when it is found (otherwise `find` has said why and moved on)."""

    def decorate(fn: Step) -> Step:
        @functools.wraps(fn)
        async def run(ctx: Context, *args: Any) -> None:
            found = await find(ctx)
            if found is not None:
                await fn(ctx, *args, *found)

        return run

    return decorate
