"""Self-declaration item by item with photo evidence, the score summary, and submission.

Every answer and photo is written the moment it arrives; the summary is always recomputed from
what is stored, so stopping, editing and coming back never loses or double-counts anything.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from bot.domain.criteria import CriteriaSet, Item, Level
from bot.domain.lifecycle import EDITABLE, Actor, State
from bot.flows.common import (
    back_choice,
    criteria_of,
    editable_submissions,
    found_by,
    level_label,
    my_submission,
    state_label,
    title_name,
    with_proxy_banner,
)
from bot.flows.context import Context, Input
from bot.flows.drafts import DeclarationDraft, KeptPhoto, TypedNote
from bot.flows.matching import match_choices
from bot.flows.router import Router
from bot.flows.season import closed_text, season_of_campaign, state_deadline_line
from bot.flows.states import Decl, Start
from bot.i18n import N_
from bot.messages import Choice, Kind, Outgoing
from bot.review.dossier import evidence_gaps
from bot.review.privacy import remove_unused_files
from bot.storage.evidence import CleanPhoto, StoredBlob
from bot.storage.models import Answer, Submission
from bot.storage.submissions import (
    answers_of,
    attach_evidence,
    evidence_counts,
    item_photos,
    known_answers,
    known_levels,
    last_request_note,
    missing_photos,
    remove_photo,
    rescore,
    save_answer,
    transition,
)

router = Router()
SHORT_TEXT = 40
# All the notes of one answer together: enough to explain an item, short enough for reviewers.
MAX_NOTE = 500
PHOTO_ERROR_KEYS = {
    "too_large": N_("photo.too_large"),
    "too_many_pixels": N_("photo.too_many_pixels"),
    "not_image": N_("photo.not_image"),
    "invalid": N_("photo.not_image"),
    "download": N_("photo.download"),
}


async def _current(ctx: Context) -> tuple[Submission, CriteriaSet] | None:
    """The submission this conversation is declaring, if it is still the person's and editable."""
    decl = ctx.draft(DeclarationDraft)
    submission = await my_submission(ctx, decl.sub)
    if submission is None:
        ctx.say(ctx.t("decl.lost"))
        ctx.goto(Start.MENU)
        return None
    if State(submission.state) not in EDITABLE:
        ctx.say(ctx.t("decl.not_editable", reference=submission.reference, state=state_label(ctx, submission.state)))
        ctx.keep(decl.left())
        ctx.goto(Start.MENU)
        return None
    if (
        decl.closes
        and ctx.today.isoformat() > decl.closes
        and submission.state in (State.REGISTERED.value, State.DECLARING.value)
    ):
        # After the self-assessment deadline a "closed" commune takes no more work on it (a
        # reviewer's request for more information still can be answered). The date is kept in
        # the conversation when the declaration opens, so a typical step costs no query.
        season = await season_of_campaign(ctx, submission.campaign_id)
        if season is not None and season.policy == "closed" and season.passed("self_declaration", ctx.today):
            ctx.say(await closed_text(ctx, season, "self_declaration"))
            ctx.keep(replace(decl.left(), closes=None))
            ctx.goto(Start.MENU)
            return None
    return submission, await criteria_of(ctx, submission)


async def _remember_closing(ctx: Context, submission: Submission) -> None:
    """Keep the day the declaration closes (a "closed" commune only) for `_current` to check."""
    season = await season_of_campaign(ctx, submission.campaign_id)
    closes = None
    if season is not None and season.policy == "closed" and "self_declaration" in season.deadlines:
        closes = season.deadlines["self_declaration"].isoformat()
    ctx.keep(replace(ctx.draft(DeclarationDraft), closes=closes))


async def _with_deadline(ctx: Context, submission: Submission, text: str) -> str:
    """A prompt that starts or continues work, with the deadline that matters to it."""
    line = await state_deadline_line(ctx, submission.campaign_id, submission.state)
    return text + "\n" + line if line else text


# For the prompts and handlers of the declaration: called with the submission being declared and
# its criteria set after the other arguments, only while it is still the person's and editable
# (otherwise `_current` has said why and gone back to the menu).
with_submission = found_by(_current)


def _item_id(ctx: Context) -> str:
    """The item at hand: set before the item, photo and removal steps are reached."""
    item = ctx.draft(DeclarationDraft).item
    if item is None:
        raise KeyError("item")
    return item


def _short(text: str) -> str:
    """Shorten at a word boundary for buttons and lists."""
    if len(text) <= SHORT_TEXT:
        return text
    cut = text[: SHORT_TEXT - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,") + "…"


def _item_ids(criteria_set: CriteriaSet, ids: list[str]) -> str:
    return ", ".join(ids)


async def _first_unanswered(
    ctx: Context, submission: Submission, criteria_set: CriteriaSet, after: int = -1
) -> Item | None:
    levels = await known_levels(ctx.session, submission.id)
    for index, item in enumerate(criteria_set.items):
        if index > after and item.id not in levels:
            return item
    return None


async def _open(ctx: Context, submission: Submission) -> None:
    """Go to where this submission's declaration stands: the first open item, or the summary."""
    criteria_set = await criteria_of(ctx, submission)
    ctx.keep(replace(ctx.draft(DeclarationDraft), sub=submission.id, return_summary=False))
    await _remember_closing(ctx, submission)
    item = await _first_unanswered(ctx, submission, criteria_set)
    if item is None or submission.state == State.NEEDS_INFO.value:
        ctx.goto(Decl.SUMMARY)
    else:
        # The first question shown says the deadline.
        ctx.keep(replace(ctx.draft(DeclarationDraft), item=item.id, deadline=True))
        ctx.goto(Decl.ITEM)


async def _advance(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    """After an item: back to the summary when editing, else the next unanswered item."""
    decl = ctx.draft(DeclarationDraft)
    if decl.return_summary:
        ctx.keep(replace(decl, return_summary=False, item=None))
        ctx.goto(Decl.SUMMARY)
        return
    item = await _next_item(ctx, submission, criteria_set)
    ctx.keep(replace(decl, item=item.id if item is not None else None))
    ctx.goto(Decl.SUMMARY if item is None else Decl.ITEM)


@router.command("bosung", "answer", english="answer", help_key=N_("help.cmd.answer"))
async def cmd_answer(ctx: Context, args: str) -> None:
    """Open the submission a reviewer sent back (the button on their notice runs this)."""
    waiting = [s for s in await editable_submissions(ctx) if s.state == State.NEEDS_INFO.value]
    if not waiting:
        ctx.say(ctx.t("decl.no_request"))
        ctx.goto(Start.MENU)
        return
    ctx.keep(replace(ctx.draft(DeclarationDraft).left(), sub=waiting[0].id))
    ctx.goto(Decl.SUMMARY)


@router.command("tudanhgia", "declare", english="declare", help_key=N_("help.cmd.declare"))
async def cmd_declare(ctx: Context, args: str) -> None:
    ctx.goto(Decl.CHOOSE)


@router.prompt(Decl.CHOOSE)
async def ask_choose(ctx: Context) -> None:
    editable = await editable_submissions(ctx)
    if not editable:
        ctx.say(ctx.t("decl.none"))
        ctx.goto(Start.MENU)
        return
    if len(editable) == 1:
        await _open(ctx, editable[0])
        return
    choices = []
    for submission in editable:
        criteria_set = await criteria_of(ctx, submission)
        choices.append(Choice(f"s{submission.id}", f"{submission.reference} — {title_name(ctx, criteria_set)}"))
    ctx.ask(ctx.t("decl.ask_choose"), [*choices, back_choice(ctx)])


@router.handle(Decl.CHOOSE)
async def on_choose(ctx: Context, inp: Input) -> None:
    if inp.choice == "back":
        ctx.goto(Start.MENU)
        return
    submission = None
    if inp.choice and inp.choice.startswith("s") and inp.choice[1:].isdigit():
        submission = await my_submission(ctx, int(inp.choice[1:]))
    if submission is None:
        ctx.retry("decl.pick_submission")
        return
    await _open(ctx, submission)


@router.prompt(Decl.INTRO)
@with_submission
async def ask_intro(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    count = len(criteria_set.items)
    intro = await _with_deadline(ctx, submission, ctx.t("decl.intro", count=count, minutes=max(5, count)))
    ctx.ask(
        with_proxy_banner(ctx, intro),
        [Choice("start", ctx.t("decl.start")), Choice("later", ctx.t("decl.later"))],
    )


@router.handle(Decl.INTRO)
@with_submission
async def on_intro(ctx: Context, inp: Input, submission: Submission, _criteria_set: CriteriaSet) -> None:
    if inp.choice == "start":
        await _open(ctx, submission)
    elif inp.choice == "later":
        ctx.say(ctx.t("decl.paused"))
        ctx.goto(Start.MENU)
    else:
        ctx.retry("decl.pick_start")


def _item_heading(ctx: Context, criteria_set: CriteriaSet, item: Item) -> str:
    position = [i.id for i in criteria_set.items].index(item.id) + 1
    total = len(criteria_set.items)
    if item.id == str(position):
        return ctx.t("decl.item_heading", n=position, total=total, max=item.max_points)
    return ctx.t("decl.item_heading_id", id=item.id, n=position, total=total, max=item.max_points)


@router.prompt(Decl.ITEM)
@with_submission
async def ask_item(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    item = criteria_set.item(_item_id(ctx))
    criterion = criteria_set.criterion_of(item.id)
    lines = [
        _item_heading(ctx, criteria_set, item),
        ctx.t("decl.item_group", group=criterion.text.get(ctx.locale)),
        item.text.get(ctx.locale),
    ]
    if item.provisional:
        lines.append(ctx.t("decl.item_suggested"))
    if item.evidence_hint:
        lines.append(ctx.t("decl.item_hint", hint=item.evidence_hint.get(ctx.locale)))
    answered = await known_levels(ctx.session, submission.id)
    photos = (await evidence_counts(ctx.session, submission.id)).get(item.id, 0)
    if item.id in answered:
        lines.append(ctx.t("decl.item_current", level=level_label(ctx, answered[item.id]), photos=photos))
    elif photos:
        lines.append(ctx.t("decl.item_photos_waiting", photos=photos))
    # Numbers stay the same on every item: 1–3 the levels every item has, 4 skip, 5 stop, and
    # "not applicable" after them where an item offers it.
    levels = [Choice(level.value, level_label(ctx, level.value)) for level in item.levels]
    rare = [c for c in levels if c.value == Level.NOT_APPLICABLE.value]
    choices = [c for c in levels if c not in rare]
    choices += [Choice("skip", ctx.t("decl.skip")), Choice("stop", ctx.t("decl.stop")), *rare]
    if photos:
        choices.append(Choice("remove_photo", ctx.t("decl.remove_photo")))  # last: numbers above stay
    text = "\n".join(lines)
    decl = ctx.draft(DeclarationDraft)
    if decl.deadline:
        ctx.keep(replace(decl, deadline=False))
        text = await _with_deadline(ctx, submission, text)
    ctx.ask(with_proxy_banner(ctx, text), choices)


async def _attach(
    ctx: Context, submission: Submission, item_id: str, photo: CleanPhoto | StoredBlob, message_id: str | None
) -> bool | None:
    """Store a received photo on an item. True: new photo; False: already had it; None: refused.

    A photo just received (CleanPhoto) is written to the evidence folder here, and only when it
    becomes a new evidence row; one kept at the summary (StoredBlob) was written then."""
    counts = await evidence_counts(ctx.session, submission.id)
    limit = ctx.app.settings.max_photos_per_item
    if counts.get(item_id, 0) >= limit:
        ctx.say(ctx.t("decl.photos_full", max=limit))
        return None
    if isinstance(photo, StoredBlob) and not ctx.app.evidence.has(photo):
        # Kept at the summary long ago and removed as unused since: ask for it again.
        _photo_refused(ctx, Input(Kind.PHOTO, photo_error="download"))
        return None
    result = await attach_evidence(
        ctx.session,
        submission,
        item_id,
        photo.blob if isinstance(photo, CleanPhoto) else photo,
        channel=ctx.msg.channel,
        message_id=message_id,
        actor_person_id=ctx.person.id if ctx.person else None,
        now=ctx.now,
    )
    if not result.created:
        ctx.say(ctx.t("decl.photo_duplicate"))
        return False
    if isinstance(photo, CleanPhoto):
        # Inside the transaction, before it commits: a row never points to a file not yet written.
        await ctx.app.evidence.save(photo)
    return True


async def _attach_input(ctx: Context, submission: Submission, item_id: str, inp: Input) -> bool | None:
    if inp.photo is None:
        _photo_refused(ctx, inp)
        return None
    return await _attach(ctx, submission, item_id, inp.photo, ctx.msg.message_id)


def _drop_pending_photo(ctx: Context, keep_path: str | None = None) -> None:
    """Forget a photo kept at the summary that was never attached, and remove its file once this
    message has committed, unless an evidence row uses the same file."""
    decl = ctx.draft(DeclarationDraft)
    if decl.pending_photo is None:
        return
    ctx.keep(replace(decl, pending_photo=None))
    path = decl.pending_photo.stored.path
    if path == keep_path:
        return
    app = ctx.app

    async def remove_file() -> None:
        async with app.sessions() as session:
            await remove_unused_files(session, app.evidence, [path])

    ctx.after_commit.append(remove_file)


def _photo_refused(ctx: Context, inp: Input) -> None:
    key = PHOTO_ERROR_KEYS.get(inp.photo_error or "download", PHOTO_ERROR_KEYS["download"])
    ctx.say(ctx.t(key, max_mb=ctx.app.settings.max_photo_bytes // (1024 * 1024)))


@router.handle(Decl.ITEM, photos=True)
@with_submission
async def on_item(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    item = criteria_set.item(_item_id(ctx))
    if inp.kind == Kind.PHOTO:
        answered = item.id in await answers_of(ctx.session, submission.id)
        if answered or Level.ACHIEVED not in item.levels:
            # Added to an item already answered (e.g. after a reviewer's request): level kept.
            if await _attach_input(ctx, submission, item.id, inp):
                ctx.say(ctx.t("decl.photo_before_level"))
            ctx.again()
            return
        # A photo sent at the level question means "achieved, with this photo": one message.
        if await _attach_input(ctx, submission, item.id, inp) is None:
            ctx.again()
            return
        await _save_level(ctx, submission, criteria_set, item, Level.ACHIEVED.value)
        count = (await evidence_counts(ctx.session, submission.id)).get(item.id, 0)
        ctx.say(ctx.t("decl.photo_means_achieved", id=item.id, count=count))
        await _advance(ctx, submission, criteria_set)
        return
    if inp.choice in {level.value for level in item.levels}:
        await _save_level(ctx, submission, criteria_set, item, inp.choice)
        if inp.choice in (Level.ACHIEVED.value, Level.PARTIAL.value):
            ctx.goto(Decl.PHOTOS)
        else:
            await _advance(ctx, submission, criteria_set)
    elif inp.choice == "skip":
        await _advance(ctx, submission, criteria_set)
    elif inp.choice == "stop":
        ctx.say(ctx.t("decl.paused"))
        ctx.goto(Start.MENU)
    elif inp.choice == "remove_photo":
        ctx.goto(Decl.REMOVE_PHOTO)
    elif inp.choice is None and _looks_like_note(inp.text):
        # Free text at the level question is a note on this item, kept until a level is chosen.
        answer = (await answers_of(ctx.session, submission.id)).get(item.id)
        if answer is not None:
            ctx.say(_add_note(ctx, answer, inp.text or ""))
        else:
            decl = ctx.draft(DeclarationDraft)
            before = decl.note.text + "\n" if decl.note is not None and decl.note.item == item.id else ""
            ctx.keep(replace(decl, note=TypedNote(item.id, (before + (inp.text or ""))[:MAX_NOTE])))
            ctx.say(ctx.t("decl.note_kept"))
        ctx.again()
    else:
        ctx.retry("decl.pick_level")


@router.prompt(Decl.REMOVE_PHOTO)
@with_submission
async def ask_remove_photo(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    """The item's photos, each shown with its number, to take a wrong one away."""
    item_id = _item_id(ctx)
    rows = await item_photos(ctx.session, submission.id, item_id)
    if not rows:
        ctx.goto(Decl.ITEM)
        return
    for index, row in enumerate(rows, start=1):
        try:
            path = ctx.app.evidence.open_path(row.path)
        except ValueError:
            path = None
        ctx.replies.append(Outgoing(text=ctx.t("decl.remove_photo_line", n=index, id=item_id), photo=path))
    choices = [Choice(f"e{row.id}", ctx.t("decl.remove_photo_choice", n=index)) for index, row in enumerate(rows, 1)]
    ctx.ask(ctx.t("decl.remove_photo_ask", id=item_id), [*choices, back_choice(ctx)])


@router.handle(Decl.REMOVE_PHOTO)
@with_submission
async def on_remove_photo(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    item_id = _item_id(ctx)
    if inp.choice == "back":
        ctx.goto(Decl.ITEM)
        return
    rows = {
        f"e{row.id}": (index, row)
        for index, row in enumerate(await item_photos(ctx.session, submission.id, item_id), 1)
    }
    if inp.choice not in rows:
        ctx.retry("decl.remove_photo_pick")
        return
    index, row = rows[inp.choice]
    path = row.path
    await remove_photo(ctx.session, submission, row)
    app = ctx.app

    async def remove_file() -> None:  # once committed, and only if no other row uses the file
        async with app.sessions() as session:
            await remove_unused_files(session, app.evidence, [path])

    ctx.after_commit.append(remove_file)
    ctx.say(ctx.t("decl.photo_removed", n=index, id=item_id))
    ctx.goto(Decl.ITEM)


def _looks_like_note(text: str | None) -> bool:
    """A sentence rather than a mistyped option: a few words."""
    return text is not None and len(text.split()) >= 2 and len(text) >= 6


async def _save_level(ctx: Context, submission: Submission, criteria_set: CriteriaSet, item: Item, level: str) -> None:
    """Store the level of an item, with a note typed before it."""
    await save_answer(
        ctx.session,
        submission,
        criteria_set,
        item.id,
        level,
        actor_person_id=ctx.person.id if ctx.person else None,
        now=ctx.now,
    )
    decl = ctx.draft(DeclarationDraft)
    if decl.note is not None and decl.note.item == item.id:
        ctx.keep(replace(decl, note=None))
        answer = (await answers_of(ctx.session, submission.id))[item.id]
        _add_note(ctx, answer, decl.note.text)


async def _next_item(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> Item | None:
    """The first unanswered item after the current one (from the start without one)."""
    ids = [item.id for item in criteria_set.items]
    at = ctx.draft(DeclarationDraft).item
    current = ids.index(at) if at in ids else -1
    return await _first_unanswered(ctx, submission, criteria_set, after=current)


@router.prompt(Decl.PHOTOS)
@with_submission
async def ask_photos(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    item = criteria_set.item(_item_id(ctx))
    count = (await evidence_counts(ctx.session, submission.id)).get(item.id, 0)
    limit = ctx.app.settings.max_photos_per_item
    if count == 0:
        if item.photo_required:
            text = ctx.t("decl.photos_ask_required", max=limit)
        else:
            text = ctx.t("decl.photos_ask", max=limit)
        ctx.ask(text, [Choice("nophoto", ctx.t("decl.no_photo"))])
    else:
        ctx.ask(ctx.t("decl.photos_more", count=count, max=limit), [Choice("done", ctx.t("decl.done"))])


@router.handle(Decl.PHOTOS, photos=True)
@with_submission
async def on_photos(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    item = criteria_set.item(_item_id(ctx))
    limit = ctx.app.settings.max_photos_per_item
    if inp.kind == Kind.PHOTO:
        created = await _attach_input(ctx, submission, item.id, inp)
        count = (await evidence_counts(ctx.session, submission.id)).get(item.id, 0)
        if created and count >= limit:
            ctx.say(ctx.t("decl.photos_enough", count=count))
            await _advance(ctx, submission, criteria_set)
        else:
            ctx.again()
        return
    if inp.choice in ("done", "nophoto"):
        if inp.choice == "nophoto" and item.photo_required:
            ctx.say(ctx.t("decl.photo_required_later"))
        await _advance(ctx, submission, criteria_set)
        return
    if inp.text and inp.choice is None:
        editing = ctx.draft(DeclarationDraft).return_summary
        following = None if editing else await _next_item(ctx, submission, criteria_set)
        if following is not None:
            # The next item's answer ("Đạt", "chưa đạt"…) means this item's photos are done.
            levels = [Choice(level.value, level_label(ctx, level.value)) for level in following.levels]
            found = match_choices(inp.text, levels, partial=False)
            if found:
                ctx.keep(replace(ctx.draft(DeclarationDraft), item=following.id))
                ctx.say(ctx.t("decl.next_item_answered", id=following.id, level=found[0].label))
                await on_item(ctx, Input(Kind.CHOICE, choice=found[0].value, text=inp.text))
                return
        answers = await answers_of(ctx.session, submission.id)
        answer = answers[item.id]
        ctx.say(_add_note(ctx, answer, inp.text))
        ctx.again()
        return
    ctx.retry("decl.pick_photos")


def _add_note(ctx: Context, answer: Answer, text: str) -> str:
    """Append a typed note to the answer, keeping what fits within MAX_NOTE; the reply says how
    much was kept."""
    current = answer.note or ""
    room = MAX_NOTE - len(current) - (1 if current else 0)
    if room <= 0:
        return ctx.t("decl.note_full", max=MAX_NOTE)
    kept = text[:room]
    answer.note = (current + "\n" if current else "") + kept
    if len(kept) < len(text):
        return ctx.t("decl.note_cut", max=MAX_NOTE, kept=len(kept))
    return ctx.t("decl.note_saved")


async def _summary_text(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> tuple[str, bool, bool]:
    """Summary text, whether items are unanswered, whether it can be submitted."""
    answers = await known_answers(ctx.session, submission.id)
    result = await rescore(ctx.session, submission, criteria_set, answers)
    counts = await evidence_counts(ctx.session, submission.id)
    no_photo = missing_photos(criteria_set, answers, counts)
    rule = criteria_set.recognition
    lines = [
        ctx.t("decl.summary_head", reference=submission.reference, title=title_name(ctx, criteria_set)),
        ctx.t("decl.summary_total", total=result.total, max=result.max_total),
    ]
    if not criteria_set.pass_rule_confirmed:
        # No confirmed pass rule for this title (the province has not set one): the score and the
        # points per item, and the commune decides — the bot never claims "eligible" here.
        points = ", ".join(f"{item_id}: {value}" for item_id, value in result.per_item.items())
        lines.append(ctx.t("decl.summary_items", points=points))
        lines.append(ctx.t("decl.summary_commune_assesses"))
        if result.unanswered:
            lines.append(ctx.t("decl.reason_unanswered", items=_item_ids(criteria_set, result.unanswered)))
    elif result.recognisable:
        if rule.item_floor is not None:
            lines.append(ctx.t("decl.summary_ok_floor", threshold=result.threshold, floor=rule.item_floor))
        else:
            lines.append(ctx.t("decl.summary_ok", threshold=result.threshold))
    else:
        lines.append(ctx.t("decl.summary_not_ok"))
        if result.unanswered:
            lines.append(ctx.t("decl.reason_unanswered", items=_item_ids(criteria_set, result.unanswered)))
        if result.total < result.threshold:
            lines.append(ctx.t("decl.reason_total", threshold=result.threshold))
        if result.below_floor:
            lines.append(
                ctx.t("decl.reason_floor", items=_item_ids(criteria_set, result.below_floor), floor=rule.item_floor)
            )
        if result.mandatory_missing:
            lines.append(ctx.t("decl.reason_mandatory", items=_item_ids(criteria_set, result.mandatory_missing)))
    if no_photo:
        lines.append(ctx.t("decl.reason_photos", items=_item_ids(criteria_set, no_photo)))
    gaps = [i for i in evidence_gaps(criteria_set, answers, counts) if i not in no_photo]
    if gaps and submission.state in (State.DECLARING.value, State.REGISTERED.value, State.NEEDS_INFO.value):
        lines.append(ctx.t("decl.summary_no_evidence", items=_item_ids(criteria_set, gaps)))
    if submission.state == State.NEEDS_INFO.value:
        event = await last_request_note(ctx.session, submission.id)
        if event is not None:
            lines.insert(1, ctx.t("decl.summary_request", note=event.note or ""))
    return "\n".join(lines), bool(result.unanswered), not result.unanswered and not no_photo


@router.prompt(Decl.SUMMARY)
@with_submission
async def ask_summary(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    text, unanswered, can_submit = await _summary_text(ctx, submission, criteria_set)
    text = await _with_deadline(ctx, submission, text)
    choices = []
    if unanswered:
        choices.append(Choice("missing", ctx.t("decl.answer_missing")))
    if can_submit:
        if submission.state == State.NEEDS_INFO.value:
            choices.append(Choice("submit", ctx.t("decl.resubmit")))
        else:
            choices.append(Choice("submit", ctx.t("decl.submit")))
    choices += [
        Choice("review", ctx.t("decl.review")),
        Choice("edit", ctx.t("decl.edit")),
        Choice("later", ctx.t("decl.later")),
    ]
    ctx.ask(with_proxy_banner(ctx, text), choices)


@router.handle(Decl.SUMMARY, photos=True)
@with_submission
async def on_summary(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    if inp.kind == Kind.PHOTO:
        if inp.photo is None:
            _photo_refused(ctx, inp)
            ctx.again()
            return
        # Keep the photo and ask which item it belongs to, rather than asking to send it again.
        blob = await ctx.app.evidence.save(inp.photo)
        _drop_pending_photo(ctx, keep_path=blob.path)  # one left from an earlier visit
        ctx.keep(replace(ctx.draft(DeclarationDraft), pending_photo=KeptPhoto(asdict(blob), ctx.msg.message_id)))
        ctx.say(ctx.t("decl.photo_pick_item_first"))
        ctx.goto(Decl.PICK_ITEM)
        return
    match inp.choice:
        case "submit":
            _text, unanswered, can_submit = await _summary_text(ctx, submission, criteria_set)
            if not can_submit:
                ctx.retry("decl.cannot_submit")
                return
            ctx.goto(Decl.CONFIRM_SUBMIT)  # asked first: a submitted application cannot be edited
        case "missing":
            item = await _first_unanswered(ctx, submission, criteria_set)
            if item is None:
                ctx.again()
                return
            ctx.keep(replace(ctx.draft(DeclarationDraft), item=item.id))
            ctx.goto(Decl.ITEM)
        case "review":
            ctx.say(await _review_text(ctx, submission, criteria_set))
            ctx.again()
        case "edit":
            _drop_pending_photo(ctx)  # left when they went elsewhere instead of picking an item
            ctx.goto(Decl.PICK_ITEM)
        case "later":
            ctx.say(ctx.t("decl.paused"))
            ctx.keep(replace(ctx.draft(DeclarationDraft), item=None, return_summary=False))
            ctx.goto(Start.MENU)
        case _:
            ctx.retry("decl.pick_summary")


@router.prompt(Decl.CONFIRM_SUBMIT)
@with_submission
async def ask_confirm_submit(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    ctx.ask(
        with_proxy_banner(ctx, ctx.t("decl.confirm_submit", reference=submission.reference, score=submission.score)),
        [Choice("submit", ctx.t("decl.confirm_submit_yes")), Choice("back", ctx.t("decl.confirm_submit_no"))],
    )


@router.handle(Decl.CONFIRM_SUBMIT)
@with_submission
async def on_confirm_submit(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    if inp.choice == "back":
        ctx.goto(Decl.SUMMARY)
        return
    if inp.choice != "submit":
        ctx.say(ctx.t("decl.confirm_submit_pick"))
        ctx.again()
        return
    _text, _unanswered, can_submit = await _summary_text(ctx, submission, criteria_set)
    if not can_submit:  # changed meanwhile (another device, a leader acting for them)
        ctx.say(ctx.t("decl.cannot_submit"))
        ctx.goto(Decl.SUMMARY)
        return
    season = await season_of_campaign(ctx, submission.campaign_id)
    late = (
        submission.state != State.NEEDS_INFO.value
        and season is not None
        and season.passed("self_declaration", ctx.today)
    )
    await transition(
        ctx.session,
        submission,
        State.SUBMITTED,
        actor=Actor.OWNER,
        actor_person_id=ctx.person.id if ctx.person else None,
        note=None,
        now=ctx.now,
    )
    ctx.keep(ctx.draft(DeclarationDraft).left())
    ctx.say(ctx.t("decl.submitted", reference=submission.reference, score=submission.score))
    if late and season is not None:
        submission.late = True
        ctx.say(ctx.t("season.late_submission", date=ctx.t.date(season.deadlines["self_declaration"])))
    ctx.goto(Start.MENU)


async def _review_text(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> str:
    answers = await answers_of(ctx.session, submission.id)
    counts = await evidence_counts(ctx.session, submission.id)
    lines = [ctx.t("decl.review_head", reference=submission.reference)]
    for item in criteria_set.items:
        answer = answers.get(item.id)
        lines.append(
            ctx.t(
                "decl.review_line",
                id=item.id,
                text=_short(item.text.get(ctx.locale)),
                level=level_label(ctx, answer.level) if answer else ctx.t("decl.unanswered"),
                points=answer.points if answer else 0,
                max=item.max_points,
                photos=counts.get(item.id, 0),
            )
        )
    return "\n".join(lines)


@router.prompt(Decl.PICK_ITEM)
@with_submission
async def ask_pick_item(ctx: Context, submission: Submission, criteria_set: CriteriaSet) -> None:
    answers = await answers_of(ctx.session, submission.id)
    choices = []
    for item in criteria_set.items:
        answer = answers.get(item.id)
        status = level_label(ctx, answer.level) if answer else ctx.t("decl.unanswered")
        choices.append(
            Choice(
                f"i:{item.id}",
                ctx.t("decl.pick_item_label", id=item.id, text=_short(item.text.get(ctx.locale)), status=status),
            )
        )
    ctx.ask(ctx.t("decl.ask_pick_item"), [*choices, back_choice(ctx)])


@router.handle(Decl.PICK_ITEM)
@with_submission
async def on_pick_item(ctx: Context, inp: Input, submission: Submission, criteria_set: CriteriaSet) -> None:
    ids = [item.id for item in criteria_set.items]
    chosen = None
    if inp.choice and inp.choice.startswith("i:"):
        chosen = inp.choice[2:]
    elif inp.text and inp.text.strip() in ids:
        chosen = inp.text.strip()
    if inp.choice == "back":
        _drop_pending_photo(ctx)
        ctx.goto(Decl.SUMMARY)
        return
    if chosen not in ids:
        ctx.retry("decl.pick_item_again")
        return
    decl = replace(ctx.draft(DeclarationDraft), item=chosen, return_summary=True)
    ctx.keep(decl)
    pending = decl.pending_photo
    if pending is not None:
        if await _attach(ctx, submission, chosen, pending.stored, pending.message_id):
            ctx.keep(replace(ctx.draft(DeclarationDraft), pending_photo=None))
            ctx.say(ctx.t("decl.photo_attached_to", id=chosen))
        else:
            _drop_pending_photo(ctx)  # refused (item full), or already on it: its file goes if unused
    ctx.goto(Decl.ITEM)
