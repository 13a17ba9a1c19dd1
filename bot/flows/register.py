"""Registration for a title: who, where, and for a household its members — editable before confirm.

The answers so far live in the conversation as a draft, so a person who stops halfway (or is
interrupted by a restart) continues at the first thing still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain.subjects import SubjectKind, subject_kind
from bot.flows.common import back_choice, read_name, state_label, title_name, with_proxy_banner
from bot.flows.consent import controller_for, shown_text
from bot.flows.context import Context, Input
from bot.flows.drafts import DeclarationDraft, MemberDraft, ProxyDraft, RegistrationDraft
from bot.flows.escape import confirm_cancel
from bot.flows.router import Router
from bot.flows.season import (
    closed_text,
    current_campaign,
    registration_line,
    registration_season,
    season_of_campaign,
)
from bot.flows.states import Decl, Reg, Start
from bot.flows.zns_phone import offer_after_registration
from bot.i18n import N_
from bot.messages import Choice
from bot.review.scope import branches_in, scope_for
from bot.storage.commune import branches_of, communes, find_communes, province_of
from bot.storage.consents import GUARDIAN_PURPOSES, ConsentKind, ConsentMethod, ShownText, attach_person, record
from bot.storage.models import OrgUnit, Person, Submission
from bot.storage.people import Role, save_registrant
from bot.storage.subjects import Registration, register_subject, registration_of
from bot.storage.submissions import DuplicateRegistration
from bot.text import clean_name, fold, parse_year, year_problem

router = Router()

MAX_MEMBERS = 20
# Up to this many communes are offered as buttons; beyond, the person types the name (searched
# without diacritics) and picks among the matches.
COMMUNE_BUTTONS = 8
ADULT_MIN_AGE = 15
MAX_AGE = 110
# A child's data needs a parent's or guardian's consent below this age, and the child's own from
# CHILD_CONSENT_AGE (Law 91/2025 on personal data; see docs/privacy.md).
GUARDIAN_BELOW_AGE = 16
CHILD_CONSENT_AGE = 7
RELATIONS = {
    "spouse": N_("relation.spouse"),
    "child": N_("relation.child"),
    "parent": N_("relation.parent"),
    "grandchild": N_("relation.grandchild"),
    "sibling": N_("relation.sibling"),
    "other": N_("relation.other"),
    "head": N_("relation.head"),
}


def _kind(ctx: Context, title: str) -> SubjectKind:
    return subject_kind(ctx.app.catalog.for_title(title, ctx.today.year).subject)


def _title(draft: RegistrationDraft) -> str:
    """The title registered for: the first answer, given before any question that reads it."""
    if draft.title is None:
        raise ValueError("registration draft without a title")
    return draft.title


def _forms(ctx: Context, draft: RegistrationDraft) -> list:
    """The title's forms, one per target group, for the province of the chosen branch."""
    return ctx.app.catalog.target_groups(_title(draft), ctx.today.year, draft.province)


# The answers each question gives, in the order they are asked: the first one missing is next.
PERSON_STEPS = (("title", Reg.TITLE), ("name", Reg.NAME), ("birth_year", Reg.BIRTH_YEAR), ("branch_id", Reg.BRANCH))
HEAD_STEPS = (("head_name", Reg.HEAD_NAME), ("head_birth_year", Reg.HEAD_BIRTH_YEAR))
MEMBER_STEPS = (("name", Reg.MEMBER_NAME), ("birth_year", Reg.MEMBER_BIRTH_YEAR), ("relation", Reg.MEMBER_RELATION))


def _first_missing(answers: RegistrationDraft | MemberDraft, steps: tuple[tuple[str, str], ...]) -> str | None:
    return next((state for name, state in steps if not getattr(answers, name)), None)


def next_step(ctx: Context, draft: RegistrationDraft) -> str:
    """The first thing still missing from the draft decides the next question."""
    missing = _first_missing(draft, PERSON_STEPS)
    if missing is not None:
        return missing
    if not draft.target_group and len(_forms(ctx, draft)) > 1:
        return Reg.TARGET_GROUP
    if _kind(ctx, _title(draft)).has_members:
        if ctx.proxy:
            draft.is_head = True  # a leader registers the household of the person they act for
        if draft.is_head is None:
            return Reg.IS_HEAD
        if not draft.is_head and (missing := _first_missing(draft, HEAD_STEPS)) is not None:
            return missing
        if not draft.members_done:
            if draft.member is not None:
                # All answered: a child under 16, kept aside until a guardian agrees.
                return _first_missing(draft.member, MEMBER_STEPS) or Reg.GUARDIAN
            return Reg.MEMBERS
    return Reg.CONFIRM


def _continue(ctx: Context, draft: RegistrationDraft) -> None:
    step = next_step(ctx, draft)  # which may settle the draft further (a proxy's household head)
    ctx.keep(draft)
    ctx.goto(step)


def _text_field(state: str, read: Callable[[Context, Input], Any], name: str, *, member: bool = False) -> None:
    """The handler of a question that fills one field `name` of the draft (of the member being
    added with `member`): `read` takes the answer, or asks again and returns None."""

    async def handle(ctx: Context, inp: Input) -> None:
        value = read(ctx, inp)
        if value is None:
            return
        draft = ctx.draft(RegistrationDraft)
        if member:
            draft.member = replace(draft.member or MemberDraft(), **{name: value})
        else:
            draft = replace(draft, **{name: value})
        _continue(ctx, draft)

    router.handle(state)(handle)


@router.command("dangky", "register", english="register", help_key=N_("help.cmd.register"))
async def cmd_register(ctx: Context, args: str) -> None:
    ctx.goto(Reg.TITLE)


@router.prompt(Reg.TITLE)
async def ask_title(ctx: Context) -> None:
    season = await registration_season(ctx, ctx.draft(RegistrationDraft).branch_id)
    if season is not None and season.policy == "closed" and season.passed("registration", ctx.today):
        ctx.say(await closed_text(ctx, season, "registration"))
        ctx.goto(Start.MENU)
        return
    year = season.campaign.year if season is not None else ctx.today.year
    choices = []
    for title in ctx.app.catalog.titles():
        choices.append(Choice(title, title_name(ctx, ctx.app.catalog.for_title(title, year))))
    if ctx.proxy:
        question = with_proxy_banner(ctx, ctx.t("reg.proxy.ask_title", year=year))
    else:
        question = ctx.t("reg.ask_title", year=year)
    deadline = registration_line(ctx, season)
    ctx.ask(question + ("\n" + deadline if deadline else ""), choices)


@router.handle(Reg.TITLE)
async def on_title(ctx: Context, inp: Input) -> None:
    if inp.choice not in ctx.app.catalog.titles():
        ctx.retry("reg.pick_title")
        return
    draft = ctx.draft(RegistrationDraft)
    if draft.title == inp.choice:
        ctx.say(ctx.t("reg.resume"))
        _continue(ctx, draft)
        return
    draft = RegistrationDraft(title=inp.choice)
    subject = ctx.subject
    if subject is not None:
        draft.name, draft.birth_year, draft.branch_id = subject.full_name, subject.birth_year, subject.branch_id
        existing = await _existing_registration(ctx, inp.choice, subject.branch_id)
        if existing is not None:
            _say_duplicate(ctx, existing)
            ctx.goto(Start.MENU)
            return
    elif ctx.proxy:
        branches = await _proxy_branches(ctx)
        if len(branches) == 1:
            draft.branch_id = branches[0].id
    if draft.branch_id:
        province = await province_of(ctx.session, draft.branch_id)
        draft.province = province.code if province else None
    _continue(ctx, draft)


def _say_duplicate(ctx: Context, existing: Submission) -> None:
    key = N_("reg.proxy.duplicate") if ctx.proxy else N_("reg.duplicate")
    ctx.say(ctx.t(key, reference=existing.reference, state=state_label(ctx, existing.state)))


async def _proxy_branches(ctx: Context) -> list[OrgUnit]:
    """The branches a leader may register people in (all of them for an admin)."""
    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, Role.LEADER)
    return await branches_in(ctx.session, scope) if scope is not None else []


async def _existing_registration(ctx: Context, title: str, branch_id: int | None) -> Submission | None:
    """This person's (or the person acted for) registration for the title this year, if any."""
    subject = ctx.subject
    if subject is None or branch_id is None:
        return None
    branch = await ctx.session.get(OrgUnit, branch_id)
    campaign = await current_campaign(ctx, branch.parent_id) if branch and branch.parent_id else None
    if campaign is None:
        return None
    return await registration_of(ctx.session, campaign.id, title, _kind(ctx, title).name, subject.id)


def _is_household(ctx: Context) -> bool:
    return _kind(ctx, _title(ctx.draft(RegistrationDraft))).has_members


@router.prompt(Reg.NAME)
async def ask_name(ctx: Context) -> None:
    if ctx.proxy:
        ctx.ask(ctx.t("reg.proxy.ask_name"))
    elif _is_household(ctx):
        ctx.ask(ctx.t("reg.ask_name_household"))
    else:
        ctx.ask(ctx.t("reg.ask_name"))


_text_field(Reg.NAME, read_name, "name")


def _read_year(ctx: Context, inp: Input, min_age: int) -> int | None:
    low, high = ctx.today.year - MAX_AGE, ctx.today.year - min_age
    problem = year_problem(inp.text or "", low, high)
    if problem is not None:
        if problem == "young" and min_age == 0:
            ctx.retry("reg.year_future", high=high)
        elif problem == "young":
            ctx.retry("reg.year_too_young", high=high, age=min_age)
        elif problem == "old":
            ctx.retry("reg.year_too_old", low=low)
        else:
            ctx.retry("reg.bad_year", low=low, high=high)
        return None
    return parse_year(inp.text or "")


def _adult_year(ctx: Context, inp: Input) -> int | None:
    return _read_year(ctx, inp, ADULT_MIN_AGE)


def _any_year(ctx: Context, inp: Input) -> int | None:
    return _read_year(ctx, inp, 0)


@router.prompt(Reg.BIRTH_YEAR)
async def ask_birth_year(ctx: Context) -> None:
    if ctx.proxy:
        ctx.ask(ctx.t("reg.proxy.ask_birth_year", name=ctx.draft(RegistrationDraft).name or ""))
    else:
        ctx.ask(ctx.t("reg.ask_birth_year"))


_text_field(Reg.BIRTH_YEAR, _adult_year, "birth_year")


@router.prompt(Reg.BRANCH)
async def ask_branch(ctx: Context) -> None:
    draft = ctx.draft(RegistrationDraft)
    if ctx.proxy:
        branches = await _proxy_branches(ctx)
        ctx.ask(ctx.t("reg.proxy.ask_branch"), [Choice(f"b{b.id}", b.name) for b in branches])
        return
    all_communes = await communes(ctx.session)
    if not all_communes:
        ctx.say(ctx.t("reg.no_commune"))
        ctx.goto(Start.MENU)
        return
    if len(all_communes) > 1 and not draft.commune_id:
        # Several communes in one installation (a whole province): the commune first, then the thôn.
        hits = [c for c in all_communes if c.id in set(draft.commune_hits)]
        if hits:
            ctx.ask(ctx.t("reg.pick_commune_hit"), [Choice(f"c{c.id}", c.name) for c in hits])
        elif len(all_communes) <= COMMUNE_BUTTONS:
            ctx.ask(ctx.t("reg.ask_commune"), [Choice(f"c{c.id}", c.name) for c in all_communes])
        else:
            ctx.ask(ctx.t("reg.ask_commune_name"))
        return
    commune_id = draft.commune_id or all_communes[0].id
    branches = await branches_of(ctx.session, commune_id)
    ctx.ask(ctx.t("reg.ask_branch"), [Choice(f"b{b.id}", b.name) for b in branches])


@router.handle(Reg.BRANCH)
async def on_branch(ctx: Context, inp: Input) -> None:
    draft = ctx.draft(RegistrationDraft)
    offered = ctx.current_choices()
    choosing_commune = not ctx.proxy and (not offered or offered[0].value.startswith("c"))
    value = inp.choice
    if value is None and choosing_commune and inp.text:
        found = await find_communes(ctx.session, inp.text)
        if len(found) == 1:
            value = f"c{found[0].id}"
        elif found:
            draft.commune_hits = [c.id for c in found]
            ctx.keep(draft)
            ctx.again()
            return
        else:
            ctx.retry("reg.commune_not_found", text=inp.text[:60])
            return
    value = value or _guess_choice(ctx, inp.text or "")
    if value and value.startswith("c") and value[1:].isdigit():
        draft.commune_hits = []
        draft.commune_id = int(value[1:])
        ctx.keep(draft)
        ctx.again()
        return
    if value and value.startswith("b") and any(c.value == value for c in offered):
        draft.branch_id = int(value[1:])
        province = await province_of(ctx.session, draft.branch_id)
        draft.province = province.code if province else None
        _continue(ctx, draft)
        return
    ctx.retry("reg.pick_branch")


@router.prompt(Reg.TARGET_GROUP)
async def ask_target_group(ctx: Context) -> None:
    forms = _forms(ctx, ctx.draft(RegistrationDraft))
    ctx.ask(
        ctx.t("reg.ask_target_group"),
        [Choice(f"g:{f.target_group}", f.target_group_name.get(ctx.locale)) for f in forms],
    )


@router.handle(Reg.TARGET_GROUP)
async def on_target_group(ctx: Context, inp: Input) -> None:
    draft = ctx.draft(RegistrationDraft)
    groups = {f.target_group for f in _forms(ctx, draft)}
    value = inp.choice or _guess_choice(ctx, inp.text or "")
    if value and value.startswith("g:") and value[2:] in groups:
        draft.target_group = value[2:]
        _continue(ctx, draft)
        return
    ctx.retry("menu.please_choose")


def _guess_choice(ctx: Context, text: str) -> str | None:
    """'ha luong' for 'Thôn Hà Lương': a unique part of a name is enough."""
    wanted = fold(text)
    if len(wanted) < 2:
        return None
    hits = [c.value for c in ctx.current_choices() if wanted in fold(c.label)]
    return hits[0] if len(hits) == 1 else None


@router.prompt(Reg.IS_HEAD)
async def ask_is_head(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_is_head"), [Choice("yes", ctx.t("common.yes")), Choice("no", ctx.t("common.no"))])


@router.handle(Reg.IS_HEAD)
async def on_is_head(ctx: Context, inp: Input) -> None:
    if inp.choice not in ("yes", "no"):
        ctx.retry("common.pick_yes_no")
        return
    draft = ctx.draft(RegistrationDraft)
    draft.is_head = inp.choice == "yes"
    if draft.is_head:
        draft.head_name = draft.head_birth_year = None
    _continue(ctx, draft)


@router.prompt(Reg.HEAD_NAME)
async def ask_head_name(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_head_name"))


_text_field(Reg.HEAD_NAME, read_name, "head_name")


@router.prompt(Reg.HEAD_BIRTH_YEAR)
async def ask_head_birth_year(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_head_birth_year", name=ctx.draft(RegistrationDraft).head_name or ""))


_text_field(Reg.HEAD_BIRTH_YEAR, _adult_year, "head_birth_year")


def relation_label(ctx: Context, relation: str) -> str:
    key = RELATIONS[relation]
    return ctx.t(key)


def _member_lines(ctx: Context, members: list[MemberDraft]) -> str:
    return "\n".join(
        ctx.t(
            "reg.member_line",
            n=i,
            name=m.name,
            year=m.birth_year,
            relation=relation_label(ctx, m.relation or ""),
        )
        for i, m in enumerate(members, start=1)
    )


@router.prompt(Reg.MEMBERS)
async def ask_members(ctx: Context) -> None:
    members = ctx.draft(RegistrationDraft).members
    if members:
        text = ctx.t("reg.members_so_far", count=len(members)) + "\n" + _member_lines(ctx, members)
        text += "\n\n" + ctx.t("reg.members_more")
        choices = [
            Choice("add", ctx.t("reg.member_add")),
            Choice("done", ctx.t("reg.members_done")),
            Choice("remove", ctx.t("reg.member_remove")),
        ]
    else:
        text = ctx.t("reg.members_ask")
        choices = [Choice("add", ctx.t("reg.member_add")), Choice("done", ctx.t("reg.members_none"))]
    ctx.ask(text, choices)


@router.handle(Reg.MEMBERS)
async def on_members(ctx: Context, inp: Input) -> None:
    draft = ctx.draft(RegistrationDraft)
    members = draft.members
    if inp.choice == "add":
        if len(members) >= MAX_MEMBERS:
            ctx.retry("reg.members_full", max=MAX_MEMBERS)
            return
        draft.member = MemberDraft()
        _continue(ctx, draft)
    elif inp.choice == "done":
        draft.members_done = True
        _continue(ctx, draft)
    elif inp.choice == "remove" and members:
        ctx.goto(Reg.REMOVE_MEMBER)
    else:
        # A typed name is the most natural way to add someone: take it as the new member's name.
        name = clean_name(inp.text or "") if inp.choice is None else None
        if name and len(members) < MAX_MEMBERS:
            draft.member = MemberDraft(name=name)
            _continue(ctx, draft)
            return
        ctx.retry("reg.members_pick")


@router.prompt(Reg.MEMBER_NAME)
async def ask_member_name(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_member_name", n=len(ctx.draft(RegistrationDraft).members) + 1))


_text_field(Reg.MEMBER_NAME, read_name, "name", member=True)


@router.prompt(Reg.MEMBER_BIRTH_YEAR)
async def ask_member_birth_year(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_member_birth_year", name=ctx.draft(RegistrationDraft).at_hand().name))


_text_field(Reg.MEMBER_BIRTH_YEAR, _any_year, "birth_year", member=True)


@router.prompt(Reg.MEMBER_RELATION)
async def ask_member_relation(ctx: Context) -> None:
    name = ctx.draft(RegistrationDraft).at_hand().name
    choices = [Choice(key, ctx.t(label)) for key, label in RELATIONS.items() if key != "head"]
    ctx.ask(ctx.t("reg.ask_member_relation", name=name), choices)


@router.handle(Reg.MEMBER_RELATION)
async def on_member_relation(ctx: Context, inp: Input) -> None:
    if inp.choice not in RELATIONS or inp.choice == "head":
        ctx.retry("reg.pick_relation")
        return
    draft = ctx.draft(RegistrationDraft)
    member = replace(draft.at_hand(), relation=inp.choice)
    if _age(ctx, member) < GUARDIAN_BELOW_AGE:
        draft.member = member  # recorded only once a parent or guardian confirms
        _continue(ctx, draft)
        return
    draft.member = None
    _add_member(ctx, draft, member)


def _age(ctx: Context, member: MemberDraft) -> int:
    if member.birth_year is None:
        raise ValueError("household member without a birth year")
    return ctx.today.year - int(member.birth_year)


def _add_member(ctx: Context, draft: RegistrationDraft, member: MemberDraft) -> None:
    draft.members = [*draft.members, member]
    ctx.say(ctx.t("reg.member_added", name=member.name))
    _continue(ctx, draft)


async def _guardian_question(ctx: Context, draft: RegistrationDraft, member: MemberDraft) -> tuple[str, ShownText]:
    """The confirmation asked for a child under 16: from a parent or guardian, and from 7 years
    old the child's own agreement too. Its exact words are what the consent row fingerprints."""
    older = _age(ctx, member) >= CHILD_CONSENT_AGE
    if ctx.proxy:
        key = N_("reg.proxy.guardian_ask_older") if older else N_("reg.proxy.guardian_ask")
    else:
        key = N_("reg.guardian_ask_older") if older else N_("reg.guardian_ask")
    text = ctx.t(key, name=member.name, year=member.birth_year)
    return text, shown_text(ctx, text, await controller_for(ctx, draft.branch_id))


@router.prompt(Reg.GUARDIAN)
async def ask_guardian(ctx: Context) -> None:
    draft = ctx.draft(RegistrationDraft)
    text, shown = await _guardian_question(ctx, draft, draft.at_hand())
    draft.guardian_shown = shown.to_json()  # what a "yes" agrees to
    ctx.keep(draft)
    ctx.ask(
        with_proxy_banner(ctx, text),
        [Choice("yes", ctx.t("reg.guardian_confirm")), Choice("no", ctx.t("reg.guardian_skip"))],
    )


@router.handle(Reg.GUARDIAN)
async def on_guardian(ctx: Context, inp: Input) -> None:
    if inp.choice not in ("yes", "no"):
        ctx.retry("reg.guardian_pick")
        return
    draft = ctx.draft(RegistrationDraft)
    member, shown_json = draft.at_hand(), draft.guardian_shown
    draft.member = draft.guardian_shown = None
    if inp.choice == "yes":
        shown = ShownText.from_json(shown_json) or (await _guardian_question(ctx, draft, member))[1]
        _add_member(ctx, draft, replace(member, guardian={**shown.to_json(), "at": ctx.now.isoformat()}))
    else:
        ctx.say(ctx.t("reg.guardian_refused", name=member.name or ""))
        _continue(ctx, draft)


@router.prompt(Reg.REMOVE_MEMBER)
async def ask_remove_member(ctx: Context) -> None:
    members = ctx.draft(RegistrationDraft).members
    choices = [Choice(f"m{i}", f"{m.name} ({m.birth_year})") for i, m in enumerate(members)]
    ctx.ask(ctx.t("reg.ask_remove_member"), [*choices, back_choice(ctx)])


@router.handle(Reg.REMOVE_MEMBER)
async def on_remove_member(ctx: Context, inp: Input) -> None:
    draft = ctx.draft(RegistrationDraft)
    members = draft.members
    if inp.choice and inp.choice.startswith("m") and inp.choice[1:].isdigit() and int(inp.choice[1:]) < len(members):
        removed = members.pop(int(inp.choice[1:]))
        ctx.say(ctx.t("reg.member_removed", name=removed.name))
        draft.members_done = False
        _continue(ctx, draft)
    elif inp.choice == "back":
        ctx.goto(Reg.MEMBERS)
    else:
        ctx.retry("reg.pick_member")


async def _summary(ctx: Context, draft: RegistrationDraft) -> str:
    branch = await ctx.session.get(OrgUnit, draft.branch_id)
    criteria_set = ctx.app.catalog.for_title(_title(draft), ctx.today.year)
    lines = [ctx.t("reg.summary_title", title=title_name(ctx, criteria_set))]
    household = subject_kind(criteria_set.subject).has_members
    if ctx.proxy and household:
        lines.append(ctx.t("reg.summary_head", name=draft.name, year=draft.birth_year))
    elif household:
        lines.append(ctx.t("reg.summary_registrant", name=draft.name, year=draft.birth_year))
    else:
        lines.append(ctx.t("reg.summary_person", name=draft.name, year=draft.birth_year))
    lines.append(ctx.t("reg.summary_branch", branch=branch.name if branch else "?"))
    forms = {f.target_group: f for f in _forms(ctx, draft)}
    if draft.target_group in forms and len(forms) > 1:
        lines.append(ctx.t("reg.summary_group", group=forms[draft.target_group].target_group_name.get(ctx.locale)))
    if household:
        if ctx.proxy:
            pass  # the person acted for is the head, named above
        elif draft.is_head:
            lines.append(ctx.t("reg.summary_head_self"))
        else:
            lines.append(ctx.t("reg.summary_head", name=draft.head_name, year=draft.head_birth_year))
        members = draft.members
        if members:
            lines.append(ctx.t("reg.summary_members", count=len(members)))
            lines.append(_member_lines(ctx, members))
        else:
            lines.append(ctx.t("reg.summary_no_members"))
    if ctx.proxy and ctx.person is not None:
        lines.append(ctx.t("reg.proxy.summary_by", name=ctx.person.full_name))
    return "\n".join(lines)


@router.prompt(Reg.CONFIRM)
async def ask_confirm(ctx: Context) -> None:
    draft = ctx.draft(RegistrationDraft)
    text = await _summary(ctx, draft) + "\n\n" + ctx.t("reg.confirm_ask")
    ctx.ask(
        text,
        [
            Choice("confirm", ctx.t("reg.confirm")),
            Choice("edit", ctx.t("reg.edit")),
            Choice("cancel", ctx.t("reg.cancel")),
        ],
    )


@router.handle(Reg.CONFIRM)
async def on_confirm(ctx: Context, inp: Input) -> None:
    if inp.choice == "confirm":
        await _finalize(ctx)
    elif inp.choice == "edit":
        ctx.goto(Reg.EDIT)
    elif inp.choice == "cancel":
        confirm_cancel(ctx)  # asked first: cancelling discards the whole draft
    else:
        ctx.retry("reg.pick_confirm")


EDIT_FIELDS = {
    "name": (N_("reg.field_name"), ("name",)),
    "birth_year": (N_("reg.field_birth_year"), ("birth_year",)),
    "branch": (N_("reg.field_branch"), ("branch_id", "commune_id", "commune_hits", "province", "target_group")),
    "head": (N_("reg.field_head"), ("is_head", "head_name", "head_birth_year")),
    "members": (N_("reg.field_members"), ("members_done",)),
}


@router.prompt(Reg.EDIT)
async def ask_edit(ctx: Context) -> None:
    household = _is_household(ctx)
    choices = [
        Choice(key, ctx.t(label))
        for key, (label, _fields) in EDIT_FIELDS.items()
        if (household or key not in ("head", "members")) and not (ctx.proxy and key == "head")
    ]
    ctx.ask(ctx.t("reg.ask_edit"), [*choices, back_choice(ctx)])


@router.handle(Reg.EDIT)
async def on_edit(ctx: Context, inp: Input) -> None:
    if inp.choice == "back":
        ctx.goto(Reg.CONFIRM)
        return
    if inp.choice not in EDIT_FIELDS:
        ctx.retry("reg.pick_field")
        return
    blank = RegistrationDraft()
    fields = EDIT_FIELDS[inp.choice][1]
    _continue(ctx, replace(ctx.draft(RegistrationDraft), **{name: getattr(blank, name) for name in fields}))


async def _finalize(ctx: Context) -> None:
    draft = ctx.draft(RegistrationDraft)
    branch = await ctx.session.get(OrgUnit, draft.branch_id)
    campaign = await current_campaign(ctx, branch.parent_id) if branch and branch.parent_id else None
    if branch is None or campaign is None:
        ctx.say(ctx.t("reg.no_campaign"))
        ctx.goto(Start.MENU)
        return
    season = await season_of_campaign(ctx, campaign.id)
    late = season is not None and season.passed("registration", ctx.today)
    if late and season is not None and season.policy == "closed":
        ctx.say(await closed_text(ctx, season, "registration"))
        ctx.goto(Start.MENU)
        return
    province = await province_of(ctx.session, branch.id)
    criteria_set = ctx.app.catalog.for_title(
        _title(draft),
        campaign.year,
        province=province.code if province else None,
        target_group=draft.target_group,
    )
    existing = await _existing_registration(ctx, _title(draft), branch.id)
    if existing is not None:
        ctx.forget(RegistrationDraft)
        _say_duplicate(ctx, existing)
        ctx.goto(Start.MENU)
        return
    if ctx.proxy and branch.id not in {b.id for b in await _proxy_branches(ctx)}:
        ctx.say(ctx.t("proxy.no_longer"))
        ctx.goto(Start.MENU)
        return

    if draft.name is None or draft.birth_year is None:
        raise ValueError("registration draft without a name or birth year")  # asked before the confirm
    created = ctx.subject is None
    proxy = ctx.draft(ProxyDraft)
    person = await save_registrant(
        ctx.session,
        ctx.subject,
        name=draft.name,
        birth_year=draft.birth_year,
        branch_id=branch.id,
        locale=ctx.locale,
        now=ctx.now,
        # Registered by the branch leader for someone without a smartphone: the leader confirmed
        # that person's consent before starting.
        created_by=ctx.person.id if ctx.proxy and ctx.person else None,
        consent_if_new=ctx.now if ctx.proxy and proxy.consent else None,
        consent_from=None if ctx.proxy else ctx.account.consent_at,
    )
    if ctx.proxy:
        if created and proxy.consent is not None:
            await _record_proxy_consent(ctx, person, proxy.consent)
        ctx.act_for(person)
    else:
        ctx.account.person_id = person.id
        ctx.person = person
        # The consent given before registration (on this account) is now theirs.
        await attach_person(ctx.session, ctx.account.id, person.id)
    registration = Registration(
        criteria_set,
        campaign,
        branch,
        person,
        actor_id=ctx.person.id if ctx.person else person.id,
        locale=ctx.locale,
        now=ctx.now,
        details=draft.to_json(),
    )
    try:
        submission = await register_subject(ctx.session, registration)
    except DuplicateRegistration as dup:
        ctx.forget(RegistrationDraft)
        _say_duplicate(ctx, dup.existing)
        ctx.goto(Start.MENU)
        return
    if submission.household_id is not None:
        await _record_guardians(ctx, draft, person, submission.household_id)
    ctx.forget(RegistrationDraft)
    ctx.keep(replace(ctx.draft(DeclarationDraft), sub=submission.id))
    ctx.say(ctx.t("reg.done", reference=submission.reference, title=title_name(ctx, criteria_set)))
    await offer_after_registration(ctx)
    if late and season is not None:
        submission.late = True
        ctx.say(ctx.t("season.late_registration", date=ctx.t.date(season.deadlines["registration"])))
    ctx.goto(Decl.INTRO)


def _confirmed_at(data: dict[str, Any], fallback: datetime) -> datetime:
    try:
        at = datetime.fromisoformat(str(data.get("at")))
    except ValueError:
        return fallback
    return at if at.tzinfo is not None else fallback


async def _record_proxy_consent(ctx: Context, person: Person, data: dict[str, Any]) -> None:
    """A branch leader confirmed this new person's consent: recorded as given through the leader."""
    await record(
        ctx.session,
        ConsentKind.GIVEN,
        ConsentMethod.PROXY,
        ShownText.from_json(data),
        at=_confirmed_at(data, ctx.now),
        person_id=person.id,
        recorded_by_person_id=ctx.person.id if ctx.person else None,
    )


async def _record_guardians(ctx: Context, draft: RegistrationDraft, registrant: Person, household_id: int) -> None:
    """One row per child under 16 whose parent or guardian confirmed (the child too, from 7)."""
    for member in draft.members:
        data = member.guardian
        if not isinstance(data, dict):
            continue
        await record(
            ctx.session,
            ConsentKind.GUARDIAN,
            ConsentMethod.PROXY if ctx.proxy else ConsentMethod.CHAT,
            ShownText.from_json(data),
            at=_confirmed_at(data, ctx.now),
            person_id=registrant.id,
            account_id=None if ctx.proxy else ctx.account.id,
            recorded_by_person_id=ctx.person.id if ctx.proxy and ctx.person else None,
            household_id=household_id,
            purposes=GUARDIAN_PURPOSES,
        )
