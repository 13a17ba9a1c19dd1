"""Reviewing in chat, for branch leaders (first-level review: recommend or not) and commune
officers (approve, reject, ask for more). Both use the same list → view → decide loop, each
within their scope; every refusal says why.

Commands: /duyet (officer: pending list with filters), /binhxet (leader: branch review),
/xem <ref> (view one), and direct decisions /congnhan, /tuchoi, /yeucau, /dexuat, /khongdexuat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.criteria import Level
from bot.domain.lifecycle import NoteRequired
from bot.flows.common import criteria_of, found_by, level_label, state_label, title_name, unit_choices
from bot.flows.context import Context, Input
from bot.flows.drafts import Draft
from bot.flows.guards import QUEUE_STATES, REFUSAL_KEYS, require
from bot.flows.register import RELATIONS
from bot.flows.router import Router
from bot.flows.states import Review, Start
from bot.i18n import N_, Translator
from bot.messages import Choice, Outgoing
from bot.review.decisions import (
    OFFERED,
    OVERRIDE_MIN,
    AwaitingBranch,
    Conflict,
    Decision,
    OutOfScope,
    OwnApplication,
    ProcessingStopped,
    allowed_decisions,
    decide,
    may_review,
    note_required,
)
from bot.review.details import submission_detail
from bot.review.dossier import (
    PHOTO_PAGE,
    PhotoPage,
    evidence_gaps,
    evidence_in_item_order,
    long_notes,
    photo_page,
)
from bot.review.queries import Filters, by_reference, neighbours, parse_reference, pending
from bot.review.reuse import reused_photos
from bot.review.scope import Scope, branches_in, scope_for
from bot.storage.models import OrgUnit, Person, Submission, SubmissionEvent
from bot.storage.people import Role
from bot.storage.subjects import subject_name
from bot.storage.submissions import answers_of
from bot.text import fold, shorten

router = Router()
PAGE = 6
REUSE_KEYS = {  # (same application, same file)
    (True, True): N_("rv.view.reuse_here"),
    (True, False): N_("rv.view.reuse_here_near"),
    (False, True): N_("rv.view.reuse_other"),
    (False, False): N_("rv.view.reuse_other_near"),
}
# Reasons reviewers give most, offered as buttons when a note is needed (they may still type one).
COMMON_REASONS = {
    Decision.REJECT: (N_("rv.reason.no_evidence"), N_("rv.reason.criteria_not_met"), N_("rv.reason.wrong_details")),
    Decision.NEEDS_INFO: (N_("rv.reason.more_photos"), N_("rv.reason.unclear_photo"), N_("rv.reason.wrong_details")),
    Decision.NOT_RECOMMEND: (N_("rv.reason.criteria_not_met"), N_("rv.reason.no_evidence")),
}
GAP_KEYS = {True: N_("rv.view.item_photo_missing"), False: N_("rv.view.item_no_evidence")}
FULL_NOTE_MAX = 3500  # one message on every channel
HISTORY = 4
# Notes are shown shortened in /xem, so one application stays one readable message.
NOTE_PREVIEW = 300

DECISION_LABEL_KEYS = {
    Decision.RECOMMEND: N_("rv.do.recommend"),
    Decision.NOT_RECOMMEND: N_("rv.do.not_recommend"),
    Decision.NEEDS_INFO: N_("rv.do.needs_info"),
    Decision.APPROVE: N_("rv.do.approve"),
    Decision.REJECT: N_("rv.do.reject"),
}
DONE_KEYS = {
    Decision.RECOMMEND: N_("rv.done.recommend"),
    Decision.NOT_RECOMMEND: N_("rv.done.not_recommend"),
    Decision.NEEDS_INFO: N_("rv.done.needs_info"),
    Decision.APPROVE: N_("rv.done.approve"),
    Decision.REJECT: N_("rv.done.reject"),
}
CONFIRM_KEYS = {
    Decision.RECOMMEND: N_("rv.confirm.recommend"),
    Decision.APPROVE: N_("rv.confirm.approve"),
}
NOTE_KEYS = {
    Decision.NOT_RECOMMEND: N_("rv.note.not_recommend"),
    Decision.NEEDS_INFO: N_("rv.note.needs_info"),
    Decision.REJECT: N_("rv.note.reject"),
    Decision.RECOMMEND: N_("rv.note.optional"),
    Decision.APPROVE: N_("rv.note.optional"),
}
ACTOR_KEYS = {
    "owner": N_("rv.actor.owner"),
    "branch": N_("rv.actor.branch"),
    "commune": N_("rv.actor.commune"),
    "system": N_("rv.actor.system"),
}


@dataclass
class ReviewDraft(Draft):
    """Where a reviewer is: the role they review in, the list's filters and page, and the
    submission (at the version they saw) and decision at hand."""

    KEY: ClassVar[str] = "rv"
    role: str = Role.OFFICER.value
    filters: dict[str, Any] | None = None
    offset: int = 0
    sub: int | None = None
    version: int | None = None
    decision: str | None = None
    dim: str | None = None  # the filter being set: branch, title or state
    photos_at: int = 0  # the page of photos to show next (after "more photos")
    photos_next: int | None = None
    brief: bool = False  # show the photos or the question only, not the whole file again
    pending_note: str | None = None  # the decision's note while the officer gives an override reason

    def chosen(self) -> Decision:
        """The decision at hand: set before the confirm, note and apply steps are reached."""
        if self.decision is None:
            raise ValueError("no decision at hand")
        return Decision(self.decision)


def _not_found(ctx: Context, text: str) -> None:
    ctx.say(ctx.t("rv.not_found", reference=text.strip()[:32] or "?"))


REVIEW_BLOCKED_KEYS = {
    OwnApplication: N_("rv.own_application"),
    ProcessingStopped: N_("rv.consent_withdrawn"),
}


async def blocked_text(
    session: AsyncSession, t: Translator, submission: Submission, person_id: int | None
) -> str | None:
    """Why this reviewer may not decide on it now (their own application, or the person withdrew
    their consent), as a message; None when they may. For chat and the review desk alike."""
    try:
        await may_review(session, submission, person_id)
    except (OwnApplication, ProcessingStopped) as refusal:
        key = REVIEW_BLOCKED_KEYS[type(refusal)]
        return t(key, reference=submission.reference)
    return None


async def _blocked(ctx: Context, submission: Submission) -> str | None:
    return await blocked_text(ctx.session, ctx.t, submission, ctx.person.id if ctx.person else None)


async def _refused(ctx: Context, submission: Submission) -> bool:
    """Say why this reviewer may not decide on it now, and ask the same question again."""
    refusal = await _blocked(ctx, submission)
    if refusal is not None:
        ctx.say(refusal)
        ctx.again()
    return refusal is not None


# ---- commands -------------------------------------------------------------------------------


async def _open_queue(ctx: Context, role: Role, args: str) -> None:
    scope = await require(ctx, role)
    if scope is None:
        return
    rv = ReviewDraft(role=role.value, filters=Filters().to_json())
    if args.strip():
        reference = parse_reference(args.split()[0])
        if reference is not None:
            submission = await by_reference(ctx.session, reference)
            if submission is None or not scope.covers(submission.branch_id):
                _not_found(ctx, reference)
                ctx.again()
                return
            rv.sub = submission.id
            ctx.keep(rv)
            ctx.goto(Review.VIEW)
            return
        filters = await _parse_filters(ctx, scope, role, args)
        if filters is None:
            ctx.say(ctx.t("rv.bad_filter", text=args.strip()[:40]))
        else:
            rv.filters = filters.to_json()
    ctx.keep(rv)
    ctx.goto(Review.LIST)


@router.command("duyet", "review", english="review", roles=(Role.OFFICER,), help_key=N_("help.cmd.review"))
async def cmd_review(ctx: Context, args: str) -> None:
    await _open_queue(ctx, Role.OFFICER, args)


@router.command(
    "binhxet", "branchreview", english="branchreview", roles=(Role.LEADER,), help_key=N_("help.cmd.branchreview")
)
async def cmd_branch_review(ctx: Context, args: str) -> None:
    await _open_queue(ctx, Role.LEADER, args)


async def _reviewer_role(ctx: Context, submission: Submission, prefer: tuple[Role, ...]) -> Role | None:
    """The role in which this person may act on this submission (officer before leader)."""
    for role in prefer:
        scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, role)
        if scope is not None and scope.covers(submission.branch_id):
            return role
    return None


async def _find_for(ctx: Context, args: str, prefer: tuple[Role, ...]) -> tuple[Submission, Role, str] | None:
    """Resolve '<reference> [note]' for a direct command, with every refusal explained."""
    if ctx.person is None or not any([await scope_for(ctx.session, ctx.person.id, r) for r in prefer]):
        key = REFUSAL_KEYS[prefer[-1]] if len(prefer) == 1 else N_("staff.not_staff")
        ctx.retry(key)
        return None
    head, _, rest = args.strip().partition(" ")
    reference = parse_reference(head)
    if reference is None:
        ctx.retry("rv.need_reference")
        return None
    submission = await by_reference(ctx.session, reference)
    role = await _reviewer_role(ctx, submission, prefer) if submission is not None else None
    if submission is None or role is None:
        _not_found(ctx, reference)
        ctx.again()
        return None
    return submission, role, rest.strip()


@router.command("xem", "view", english="view", roles=(Role.LEADER, Role.OFFICER), help_key=N_("help.cmd.view"))
async def cmd_view(ctx: Context, args: str) -> None:
    found = await _find_for(ctx, args, (Role.OFFICER, Role.LEADER))
    if found is None:
        return
    submission, role, _rest = found
    ctx.keep(ReviewDraft(role=role.value, filters=Filters().to_json(), sub=submission.id))
    ctx.goto(Review.VIEW)


async def _direct(ctx: Context, args: str, decision: Decision, prefer: tuple[Role, ...]) -> None:
    found = await _find_for(ctx, args, prefer)
    if found is None:
        return
    submission, role, note = found
    if await _refused(ctx, submission):
        return
    if decision not in allowed_decisions(role, submission.state):
        ctx.retry("rv.not_now", reference=submission.reference, state=state_label(ctx, submission.state))
        return
    rv = ReviewDraft(
        role=role.value,
        filters=Filters().to_json(),
        sub=submission.id,
        version=submission.version,
        decision=decision.value,
    )
    ctx.keep(rv)
    if note:
        await _apply(ctx, note)
    elif note_required(role, submission.state, decision):
        ctx.goto(Review.NOTE)
    else:
        ctx.goto(Review.CONFIRM)


@router.command("congnhan", "approve", english="approve", roles=(Role.OFFICER,), help_key=N_("help.cmd.approve"))
async def cmd_approve(ctx: Context, args: str) -> None:
    await _direct(ctx, args, Decision.APPROVE, (Role.OFFICER,))


@router.command("tuchoi", "reject", english="reject", roles=(Role.OFFICER,), help_key=N_("help.cmd.reject"))
async def cmd_reject(ctx: Context, args: str) -> None:
    await _direct(ctx, args, Decision.REJECT, (Role.OFFICER,))


@router.command(
    "yeucau", "askinfo", english="askinfo", roles=(Role.LEADER, Role.OFFICER), help_key=N_("help.cmd.askinfo")
)
async def cmd_ask_info(ctx: Context, args: str) -> None:
    await _direct(ctx, args, Decision.NEEDS_INFO, (Role.OFFICER, Role.LEADER))


@router.command("dexuat", "recommend", english="recommend", roles=(Role.LEADER,), help_key=N_("help.cmd.recommend"))
async def cmd_recommend(ctx: Context, args: str) -> None:
    await _direct(ctx, args, Decision.RECOMMEND, (Role.LEADER,))


@router.command(
    "khongdexuat", "notrecommend", english="notrecommend", roles=(Role.LEADER,), help_key=N_("help.cmd.notrecommend")
)
async def cmd_not_recommend(ctx: Context, args: str) -> None:
    await _direct(ctx, args, Decision.NOT_RECOMMEND, (Role.LEADER,))


# ---- the queue --------------------------------------------------------------------------------


async def _scope(ctx: Context) -> tuple[Role, Scope] | None:
    """Re-check the role on every step: a grant revoked mid-review stops the review."""
    role = Role(ctx.draft(ReviewDraft).role)
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, role)
    if scope is None:
        ctx.forget(ReviewDraft)
        key = REFUSAL_KEYS[role]
        ctx.say(ctx.t(key))
        ctx.goto(Start.MENU)
        return None
    return role, scope


async def _parse_filters(ctx: Context, scope: Scope, role: Role, text: str) -> Filters | None:
    """'ha luong cd' → branch Thôn Hà Lương, title cd; None when a word matches nothing."""
    filters = Filters()
    words = fold(text).split()
    branches = await branches_in(ctx.session, scope)
    titles = {t: fold(title_name(ctx, ctx.app.catalog.for_title(t, ctx.today.year))) for t in ctx.app.catalog.titles()}
    rest = []
    for word in words:
        if word in titles:
            filters.title = word
        else:
            rest.append(word)
    if rest:
        phrase = " ".join(rest)
        hits = [b for b in branches if phrase in fold(b.name)]
        title_hits = [t for t, name in titles.items() if phrase in name]
        state_hits = [s.value for s in QUEUE_STATES[role] if phrase in fold(state_label(ctx, s.value))]
        if len(hits) == 1:
            filters.branch_id = hits[0].id
        elif len(title_hits) == 1:
            filters.title = title_hits[0]
        elif len(state_hits) == 1:
            filters.state = state_hits[0]
        else:
            return None
    return filters


async def _filter_text(ctx: Context, filters: Filters) -> str | None:
    parts = []
    if filters.branch_id is not None:
        branch = await ctx.session.get(OrgUnit, filters.branch_id)
        parts.append(branch.name if branch else "?")
    if filters.title:
        parts.append(title_name(ctx, ctx.app.catalog.for_title(filters.title, ctx.today.year)))
    if filters.state:
        parts.append(state_label(ctx, filters.state))
    return ", ".join(parts) if parts else None


@router.prompt(Review.LIST)
@found_by(_scope)
async def ask_list(ctx: Context, role: Role, scope: Scope) -> None:
    rv = ctx.draft(ReviewDraft)
    filters = Filters.from_json(rv.filters)
    offset = rv.offset
    page = await pending(ctx.session, scope, QUEUE_STATES[role], filters, limit=PAGE, offset=offset)
    if page.rows == [] and offset:
        rv.offset = 0
        ctx.keep(rv)
        page = await pending(ctx.session, scope, QUEUE_STATES[role], filters, limit=PAGE, offset=0)
        offset = 0
    filter_text = await _filter_text(ctx, filters)
    head_key = N_("rv.list.head_leader") if role == Role.LEADER else N_("rv.list.head_officer")
    lines = []
    if page.total == 0:
        empty_key = N_("rv.list.empty_leader") if role == Role.LEADER else N_("rv.list.empty_officer")
        lines.append(ctx.t(empty_key))
    else:
        lines.append(ctx.t(head_key, total=page.total, first=offset + 1, last=offset + len(page.rows)))
        if len(QUEUE_STATES[role]) > 1:
            counts = [
                ctx.t("rv.list.count", state=state_label(ctx, s.value), count=page.counts.get(s.value, 0))
                for s in QUEUE_STATES[role]
                if page.counts.get(s.value)
            ]
            lines.append("; ".join(counts))
    if filter_text:
        lines.append(ctx.t("rv.list.filtered", filters=filter_text))
    choices = []
    for row in page.rows:
        label = ctx.t(
            "rv.list.item",
            reference=row.reference,
            name=row.name or ctx.t("rv.anonymous"),
            branch=row.branch_name,
            score=row.score,
        )
        choices.append(Choice(f"s{row.id}", label))
    if offset + len(page.rows) < page.total:
        choices.append(Choice("next", ctx.t("rv.list.next")))
    if offset > 0:
        choices.append(Choice("prev", ctx.t("rv.list.prev")))
    choices.append(Choice("filter", ctx.t("rv.list.filter")))
    if not filters.empty:
        choices.append(Choice("clear", ctx.t("rv.list.clear")))
    choices.append(Choice("menu", ctx.t("common.to_menu")))
    if page.rows:
        lines.append(ctx.t("rv.list.pick"))
    ctx.ask("\n".join(lines), choices)


@router.handle(Review.LIST)
async def on_list(ctx: Context, inp: Input) -> None:
    rv = ctx.draft(ReviewDraft)
    choice = inp.choice or ""
    if choice.startswith("s") and choice[1:].isdigit():
        rv.sub = int(choice[1:])
        ctx.keep(rv)
        ctx.goto(Review.VIEW)
    elif choice in ("next", "prev"):
        step = PAGE if choice == "next" else -PAGE
        rv.offset = max(0, rv.offset + step)
        ctx.keep(rv)
        ctx.again()
    elif choice == "filter":
        ctx.goto(Review.FILTER)
    elif choice == "clear":
        rv.filters, rv.offset = Filters().to_json(), 0
        ctx.keep(rv)
        ctx.again()
    elif choice == "menu":
        ctx.forget(ReviewDraft)
        ctx.goto(Start.MENU)
    elif inp.text and parse_reference(inp.text):
        await _open_queue(ctx, Role(rv.role), inp.text)
    else:
        ctx.retry("rv.list.please_choose")


@router.prompt(Review.FILTER)
async def ask_filter(ctx: Context) -> None:
    choices = [
        Choice("branch", ctx.t("rv.filter.branch")),
        Choice("title", ctx.t("rv.filter.title")),
    ]
    if Role(ctx.draft(ReviewDraft).role) == Role.OFFICER:
        choices.append(Choice("state", ctx.t("rv.filter.state")))
    ctx.ask(ctx.t("rv.filter.ask"), [*choices, Choice("back", ctx.t("common.back"))])


@router.handle(Review.FILTER)
async def on_filter(ctx: Context, inp: Input) -> None:
    if inp.choice in ("branch", "title", "state"):
        rv = ctx.draft(ReviewDraft)
        rv.dim = inp.choice
        ctx.keep(rv)
        ctx.goto(Review.FILTER_VALUE)
    elif inp.choice == "back":
        ctx.goto(Review.LIST)
    else:
        ctx.retry("rv.list.please_choose")


@router.prompt(Review.FILTER_VALUE)
@found_by(_scope)
async def ask_filter_value(ctx: Context, role: Role, scope: Scope) -> None:
    dim = ctx.draft(ReviewDraft).dim
    if dim == "branch":
        choices = unit_choices(await branches_in(ctx.session, scope), "b")
    elif dim == "title":
        choices = [
            Choice(f"t{t}", title_name(ctx, ctx.app.catalog.for_title(t, ctx.today.year)))
            for t in ctx.app.catalog.titles()
        ]
    else:
        choices = [Choice(f"x{s.value}", state_label(ctx, s.value)) for s in QUEUE_STATES[role]]
    ctx.ask(ctx.t("rv.filter.ask_value"), [*choices, Choice("back", ctx.t("common.back"))])


@router.handle(Review.FILTER_VALUE)
async def on_filter_value(ctx: Context, inp: Input) -> None:
    rv = ctx.draft(ReviewDraft)
    choice = inp.choice or ""
    filters = Filters.from_json(rv.filters)
    if choice == "back":
        ctx.goto(Review.FILTER)
        return
    if choice.startswith("b") and choice[1:].isdigit():
        filters.branch_id = int(choice[1:])
    elif choice.startswith("t") and choice[1:]:
        filters.title = choice[1:]
    elif choice.startswith("x") and choice[1:]:
        filters.state = choice[1:]
    else:
        ctx.retry("rv.list.please_choose")
        return
    rv.filters, rv.offset = filters.to_json(), 0
    rv.dim = None
    ctx.keep(rv)
    ctx.goto(Review.LIST)


# ---- one submission ---------------------------------------------------------------------------


async def _load(ctx: Context) -> tuple[Role, Scope, Submission] | None:
    rv = ctx.draft(ReviewDraft)
    found = await _scope(ctx)
    if found is None:
        return None
    role, scope = found
    submission = await ctx.session.get(Submission, rv.sub, populate_existing=True) if rv.sub else None
    if submission is None or not scope.covers(submission.branch_id):
        _not_found(ctx, str(rv.sub or ""))
        ctx.goto(Review.LIST)
        return None
    return role, scope, submission


async def _who(ctx: Context, submission: Submission) -> str:
    name = await subject_name(ctx.session, submission)
    return name or ctx.t("rv.anonymous")


async def _details(ctx: Context, submission: Submission) -> tuple[str, list[Outgoing], PhotoPage, bool]:
    criteria_set = await criteria_of(ctx, submission)
    detail = await submission_detail(ctx.session, submission, criteria_set, history=HISTORY)
    lines = [ctx.t("rv.view.head", reference=submission.reference, title=title_name(ctx, criteria_set))]
    subject = detail.subject
    if submission.anonymised_at is not None:
        lines.append(ctx.t("rv.view.anonymised"))
    elif subject is not None and subject.members is not None:
        lines.append(
            ctx.t(
                "rv.view.household",
                name=subject.name or "?",
                count=subject.members,
                branch=detail.branch_name,
            )
        )
        for member in detail.members:
            lines.append(
                ctx.t(
                    "rv.view.member",
                    name=member.full_name,
                    year=member.birth_year or "?",
                    relation=ctx.t(RELATIONS.get(member.relation, RELATIONS["other"])),
                )
            )
    elif subject is not None:
        lines.append(
            ctx.t(
                "rv.view.person",
                name=subject.name,
                year=subject.birth_year or "?",
                branch=detail.branch_name,
            )
        )
    if detail.proxy_name:
        lines.append(ctx.t("rv.view.proxy", name=detail.proxy_name))
    when = (
        ctx.t.date(submission.submitted_at.astimezone(ctx.app.settings.tz).date()) if submission.submitted_at else "-"
    )
    lines.append(ctx.t("rv.view.state", state=state_label(ctx, submission.state), date=when))
    if submission.late:
        lines.append(ctx.t("rv.view.late"))
    result = detail.score
    lines.append(ctx.t("rv.view.score", total=result.total, max=result.max_total, threshold=result.threshold))
    if not criteria_set.pass_rule_confirmed:
        lines.append(ctx.t("rv.view.rule_unconfirmed"))
    elif result.recognisable:
        lines.append(ctx.t("rv.view.recognisable"))
    else:
        blocking = ", ".join(result.blocking_items) or "-"
        if result.total < result.threshold and not result.blocking_items:
            lines.append(ctx.t("rv.view.below_total", threshold=result.threshold))
        else:
            lines.append(ctx.t("rv.view.blocking", items=blocking))
    removed_at = detail.photos_removed_at
    evidence = await evidence_in_item_order(ctx.session, submission.id, criteria_set)
    gaps = set(evidence_gaps(criteria_set, detail.answers, {i.id: detail.photos_for(i.id) for i in criteria_set.items}))
    if submission.anonymised_at is None:
        lines.append(ctx.t("rv.view.items"))
        for item in criteria_set.items:
            answer = detail.answers.get(item.id)
            photo_count = detail.photos_for(item.id)
            level = level_label(ctx, answer.level) if answer else ctx.t("decl.unanswered")
            lines.append(
                ctx.t(
                    "rv.view.item",
                    id=item.id,
                    text=_short(item.text.get(ctx.locale)),
                    level=level,
                    points=answer.points if answer else 0,
                    max=item.max_points,
                    photos=photo_count,
                )
            )
            if answer is not None and answer.note:
                lines.append(ctx.t("rv.view.item_note", note=shorten(answer.note, NOTE_PREVIEW)))
            if answer is not None and answer.level == Level.NOT_APPLICABLE.value:
                lines.append(ctx.t("rv.view.item_not_applicable"))
            if item.id in gaps and removed_at is None:
                lines.append(ctx.t(GAP_KEYS[item.photo_required]))
    reuses = await reused_photos(ctx.session, submission) if submission.anonymised_at is None else []
    if reuses:
        lines.append(ctx.t("rv.view.reuse_head"))
        for reuse in reuses:
            lines.append(
                ctx.t(
                    REUSE_KEYS[(reuse.other_reference is None, reuse.exact)],
                    item=reuse.item_id,
                    other_item=reuse.other_item,
                    reference=reuse.other_reference or "",
                )
            )
    if removed_at is not None:
        lines.append(
            ctx.t(
                "rv.view.photos_removed",
                date=ctx.t.date(removed_at.astimezone(ctx.app.settings.tz).date()),
            )
        )
    if detail.history:
        lines.append(ctx.t("rv.view.history"))
        for event in detail.history:
            actor_key = ACTOR_KEYS.get(event.actor_kind, ACTOR_KEYS["system"])
            line = ctx.t(
                "rv.view.event",
                date=ctx.t.date(event.at.astimezone(ctx.app.settings.tz).date(), "short"),
                state=state_label(ctx, event.to_state),
                actor=ctx.t(actor_key),
            )
            if event.note:
                line += " — " + shorten(event.note, NOTE_PREVIEW)
            lines.append(line)
    page = photo_page(evidence, ctx.draft(ReviewDraft).photos_at)
    photos = _photo_replies(ctx, page)
    notes = submission.anonymised_at is None and bool(long_notes(criteria_set, detail.answers))
    return "\n".join(lines), photos, page, notes


def _photo_replies(ctx: Context, page: PhotoPage) -> list[Outgoing]:
    photos = []
    for index, row in enumerate(page.rows, start=page.first):
        try:
            path = ctx.app.evidence.open_path(row.path)
        except ValueError:
            continue
        photos.append(
            Outgoing(
                text=ctx.t("rv.view.photo", item=row.item_id, n=index, total=page.total),
                photo=path,
            )
        )
    return photos


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@router.prompt(Review.VIEW)
@found_by(_load)
async def ask_view(ctx: Context, role: Role, scope: Scope, submission: Submission) -> None:
    text, photos, page, notes = await _details(ctx, submission)
    rv = ctx.draft(ReviewDraft)
    brief = rv.brief  # after "more photos" or "full notes": not the whole file again
    rv.brief = False
    rv.version = submission.version
    rv.decision = None
    rv.photos_at = 0
    rv.photos_next = page.next_offset
    ctx.keep(rv)
    if not brief:
        ctx.say(text)
    ctx.replies.extend(photos)
    decisions = allowed_decisions(role, submission.state) if submission.anonymised_at is None else []
    refusal = await _blocked(ctx, submission) if decisions else None
    if refusal is not None:
        decisions = []
    choices = [Choice(f"d:{d.value}", ctx.t(DECISION_LABEL_KEYS[d])) for d in decisions]
    if page.next_offset is not None:
        last = min(page.total, page.next_offset + PHOTO_PAGE)
        choices.append(
            Choice("photos", ctx.t("rv.view.more_photos", first=page.next_offset + 1, last=last, total=page.total))
        )
    if notes:
        choices.append(Choice("notes", ctx.t("rv.view.full_notes")))
    before, after = await neighbours(
        ctx.session,
        scope,
        QUEUE_STATES[role],
        Filters.from_json(rv.filters),
        submission.id,
    )
    if after is not None:
        choices.append(Choice(f"go:{after}", ctx.t("rv.view.next")))
    if before is not None:
        choices.append(Choice(f"go:{before}", ctx.t("rv.view.previous")))
    choices += [Choice("list", ctx.t("rv.back_to_list")), Choice("menu", ctx.t("common.to_menu"))]
    if refusal is not None:
        question = refusal
    elif decisions:
        question = ctx.t("rv.view.ask")
    else:
        question = ctx.t("rv.view.no_action", state=state_label(ctx, submission.state))
    ctx.ask(question, choices)


@router.handle(Review.VIEW)
async def on_view(ctx: Context, inp: Input) -> None:
    choice = inp.choice or ""
    if choice.startswith("d:"):
        loaded = await _load(ctx)
        if loaded is None:
            return
        role, _scope_, submission = loaded
        if await _refused(ctx, submission):
            return
        decision = Decision(choice[2:])
        rv = ctx.draft(ReviewDraft)
        rv.decision = decision.value
        ctx.keep(rv)
        if note_required(role, submission.state, decision):
            ctx.goto(Review.NOTE)
        else:
            ctx.goto(Review.CONFIRM)
    elif choice == "photos":
        rv = ctx.draft(ReviewDraft)
        rv.photos_at, rv.brief = rv.photos_next or 0, True
        ctx.keep(rv)
        ctx.goto(Review.VIEW)
    elif choice == "notes":
        await _full_notes(ctx)
    elif choice.startswith("go:") and choice[3:].isdigit():
        # The next or previous application of the queue (checked against scope when shown).
        rv = ctx.draft(ReviewDraft)
        rv.sub, rv.photos_at, rv.photos_next, rv.brief, rv.decision = int(choice[3:]), 0, None, False, None
        ctx.keep(rv)
        ctx.goto(Review.VIEW)
    elif choice == "list":
        ctx.goto(Review.LIST)
    elif choice == "menu":
        ctx.forget(ReviewDraft)
        ctx.goto(Start.MENU)
    else:
        ctx.retry("rv.list.please_choose")


@found_by(_load)
async def _full_notes(ctx: Context, role: Role, scope: Scope, submission: Submission) -> None:
    criteria_set = await criteria_of(ctx, submission)
    for item_id, note in long_notes(criteria_set, await answers_of(ctx.session, submission.id)):
        ctx.say(ctx.t("rv.view.full_note", id=item_id, note=note[:FULL_NOTE_MAX]))
    rv = ctx.draft(ReviewDraft)
    rv.brief = True
    ctx.keep(rv)
    ctx.goto(Review.VIEW)


@router.prompt(Review.CONFIRM)
@found_by(_load)
async def ask_confirm(ctx: Context, role: Role, scope: Scope, submission: Submission) -> None:
    decision = ctx.draft(ReviewDraft).chosen()
    key = CONFIRM_KEYS.get(decision, N_("rv.confirm.generic"))
    ctx.ask(
        ctx.t(key, reference=submission.reference, name=await _who(ctx, submission)),
        [Choice("yes", ctx.t("rv.confirm.yes")), Choice("back", ctx.t("common.back"))],
    )


@router.handle(Review.CONFIRM)
async def on_confirm(ctx: Context, inp: Input) -> None:
    if inp.choice == "yes":
        await _apply(ctx, None)
    elif inp.choice == "back":
        ctx.goto(Review.VIEW)
    elif inp.text and inp.choice is None:
        # A typed sentence here is a note for the decision (optional for approve/recommend).
        await _apply(ctx, inp.text)
    else:
        ctx.retry("rv.list.please_choose")


@router.prompt(Review.NOTE)
@found_by(_load)
async def ask_note(ctx: Context, role: Role, scope: Scope, submission: Submission) -> None:
    decision = ctx.draft(ReviewDraft).chosen()
    key = NOTE_KEYS[decision]
    reasons = [Choice(f"r:{index}", ctx.t(reason)) for index, reason in enumerate(COMMON_REASONS.get(decision, ()))]
    ctx.ask(ctx.t(key, reference=submission.reference), [*reasons, Choice("back", ctx.t("common.back"))])


@router.handle(Review.NOTE)
async def on_note(ctx: Context, inp: Input) -> None:
    if inp.choice == "back":
        ctx.goto(Review.VIEW)
        return
    reasons = COMMON_REASONS.get(ctx.draft(ReviewDraft).chosen(), ())
    if inp.choice and inp.choice.startswith("r:") and inp.choice[2:].isdigit() and int(inp.choice[2:]) < len(reasons):
        await _apply(ctx, ctx.t(reasons[int(inp.choice[2:])]))
        return
    note = (inp.text or "").strip()
    if len(note) < 3:
        ctx.retry("rv.note.too_short")
        return
    await _apply(ctx, note)


@router.prompt(Review.OVERRIDE)
async def ask_override(ctx: Context) -> None:
    ctx.ask(ctx.t("rv.override.ask"), [Choice("back", ctx.t("common.back"))])


@router.handle(Review.OVERRIDE)
async def on_override(ctx: Context, inp: Input) -> None:
    rv = ctx.draft(ReviewDraft)
    if inp.choice == "back":
        rv.pending_note = None
        ctx.keep(rv)
        ctx.goto(Review.VIEW)
        return
    reason = (inp.text or "").strip()
    if len(reason) < OVERRIDE_MIN:
        ctx.retry("rv.override.too_short")
        return
    note, rv.pending_note = rv.pending_note, None
    ctx.keep(rv)
    await _apply(ctx, note, override=reason)


async def _apply(ctx: Context, note: str | None, override: str | None = None) -> None:
    rv = ctx.draft(ReviewDraft)
    found = await _scope(ctx)
    if found is None:
        return
    role, scope = found
    if rv.sub is None or ctx.person is None:  # nothing at hand: back to the list
        ctx.goto(Review.LIST)
        return
    decision = rv.chosen()
    if decision not in OFFERED[role]:
        ctx.say(ctx.t(REFUSAL_KEYS[Role.OFFICER if role == Role.LEADER else Role.LEADER]))
        ctx.goto(Review.VIEW)
        return
    try:
        event = await decide(
            ctx.session,
            submission_id=rv.sub,
            decision=decision,
            role=role,
            scope=scope,
            actor_person_id=ctx.person.id,
            note=note,
            now=ctx.now,
            expected_version=rv.version,
            override=override,
            branch_first=True,
        )
    except AwaitingBranch as waiting:
        # The commune's rule: ask why the commune decides now (kept in the audit trail).
        due = ctx.t.date(waiting.due) if waiting.due else ctx.t("rv.override.no_deadline")
        ctx.say(ctx.t("rv.override.waiting", reference=waiting.submission.reference, due=due))
        rv.pending_note = note
        ctx.keep(rv)
        ctx.goto(Review.OVERRIDE)
        return
    except OutOfScope:
        _not_found(ctx, str(rv.sub))
        ctx.goto(Review.LIST)
        return
    except (OwnApplication, ProcessingStopped) as refusal:
        submission = await ctx.session.get(Submission, rv.sub)
        key = REVIEW_BLOCKED_KEYS[type(refusal)]
        ctx.say(ctx.t(key, reference=submission.reference if submission else "?"))
        ctx.goto(Review.VIEW)
        return
    except Conflict as conflict:
        await _say_conflict(ctx, conflict)
        ctx.goto(Review.VIEW)
        return
    except NoteRequired:
        ctx.say(ctx.t("rv.note.too_short"))
        ctx.goto(Review.NOTE)
        return
    submission = await ctx.session.get_one(Submission, event.submission_id)
    done_key = DONE_KEYS[decision]
    ctx.say(ctx.t(done_key, reference=submission.reference, name=await _who(ctx, submission)))
    rv.decision = None
    rv.sub = None
    ctx.keep(rv)
    ctx.goto(Review.LIST)


async def changed_by(session: AsyncSession, t: Translator, last: SubmissionEvent | None) -> str:
    """Who made the latest change, for a conflict message: the person's name when the event has
    one, else who they acted as (the system when nothing is known)."""
    who = t("rv.actor.system")
    if last is not None and last.actor_person_id:
        actor = await session.get(Person, last.actor_person_id)
        if actor is not None and actor.full_name:
            who = actor.full_name
    elif last is not None:
        actor_key = ACTOR_KEYS.get(last.actor_kind, ACTOR_KEYS["system"])
        who = t(actor_key)
    return who


async def _say_conflict(ctx: Context, conflict: Conflict) -> None:
    submission = conflict.submission
    ctx.say(
        ctx.t(
            "rv.conflict",
            reference=submission.reference,
            state=state_label(ctx, submission.state),
            who=await changed_by(ctx.session, ctx.t, conflict.last),
        )
    )
