"""Where my submissions stand: state, score, what is missing, the next deadline, reviewer requests."""

from __future__ import annotations

from bot.domain.lifecycle import EDITABLE, State
from bot.flows.common import (
    criteria_of,
    menu_choice,
    my_submissions,
    state_label,
    title_name,
)
from bot.flows.context import Context, Input
from bot.flows.router import Router
from bot.flows.season import state_deadline_line
from bot.flows.states import Decl, Start, Status
from bot.i18n import N_
from bot.messages import Choice
from bot.storage.submissions import answers_of, last_request_note, rescore

router = Router()


@router.command("trangthai", "status", english="status", help_key=N_("help.cmd.status"))
async def cmd_status(ctx: Context, args: str) -> None:
    ctx.goto(Status.SHOW)


@router.prompt(Status.SHOW)
async def ask_status(ctx: Context) -> None:
    submissions = await my_submissions(ctx)
    if not submissions:
        ctx.say(ctx.t("status.none"))
        ctx.goto(Start.MENU)
        return
    blocks = []
    editable = False
    for submission in submissions:
        criteria_set = await criteria_of(ctx, submission)
        result = await rescore(ctx.session, submission, criteria_set)
        lines = [
            ctx.t(
                "status.line",
                reference=submission.reference,
                title=title_name(ctx, criteria_set),
                state=state_label(ctx, submission.state),
            ),
            ctx.t("status.score", total=result.total, max=result.max_total, threshold=result.threshold),
        ]
        if State(submission.state) in EDITABLE:
            editable = True
            answers = await answers_of(ctx.session, submission.id)
            missing = [item.id for item in criteria_set.items if item.id not in answers]
            if missing:
                lines.append(ctx.t("status.missing", items=", ".join(missing)))
        if submission.state == State.NEEDS_INFO.value:
            event = await last_request_note(ctx.session, submission.id)
            lines.append(ctx.t("status.request", note=event.note if event else ""))
        # Only the deadline that matters to where this application stands (none once decided).
        deadline = await state_deadline_line(ctx, submission.campaign_id, submission.state)
        if deadline is not None:
            lines.append(deadline)
        blocks.append("\n".join(lines))
    choices = [Choice("declare", ctx.t("status.continue"))] if editable else []
    ctx.ask("\n\n".join(blocks), [*choices, menu_choice(ctx)])


@router.handle(Status.SHOW)
async def on_status(ctx: Context, inp: Input) -> None:
    if inp.choice == "declare":
        ctx.goto(Decl.CHOOSE)
    elif inp.choice == "menu":
        ctx.goto(Start.MENU)
    else:
        ctx.retry("menu.please_choose")
