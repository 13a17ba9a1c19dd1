"""Registration for a title: who, where, and for a household its members — editable before confirm.

The answers so far live in the conversation as a draft, so a person who stops halfway (or is
interrupted by a restart) continues at the first thing still missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.flows.common import back_choice, read_name, state_label, title_name, with_proxy_banner
from bot.flows.consent import controller_for, shown_text
from bot.flows.context import Context, Input
from bot.flows.states import Decl, Reg, Start
from bot.messages import Choice
from bot.flows.router import Router
from bot.i18n import N_
from bot.storage.commune import branches_of, campaign_for, communes
from bot.storage.consents import GUARDIAN_PURPOSES, ConsentKind, ConsentMethod, ShownText, attach_person, record
from bot.storage.models import Household, OrgUnit, Person, Submission
from bot.storage.people import MemberSpec, create_household, replace_members
from bot.storage.submissions import DuplicateRegistration, create_submission
from bot.text import clean_name, fold, parse_year

router = Router()

MAX_MEMBERS = 20
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


def _draft(ctx: Context) -> dict[str, Any]:
    return dict(ctx.data.get("reg") or {})


def _save(ctx: Context, draft: dict[str, Any]) -> None:
    ctx.set(reg=draft)


def _subject(ctx: Context, title: str) -> str:
    return ctx.app.catalog.for_title(title, ctx.today.year).subject


def next_step(ctx: Context, draft: dict[str, Any]) -> str:
    """The first thing still missing from the draft decides the next question."""
    if not draft.get("title"):
        return Reg.TITLE
    if not draft.get("name"):
        return Reg.NAME
    if not draft.get("birth_year"):
        return Reg.BIRTH_YEAR
    if not draft.get("branch_id"):
        return Reg.BRANCH
    if _subject(ctx, draft["title"]) == "household":
        if ctx.proxy:
            draft["is_head"] = True  # a leader registers the household of the person they act for
        if draft.get("is_head") is None:
            return Reg.IS_HEAD
        if not draft["is_head"]:
            if not draft.get("head_name"):
                return Reg.HEAD_NAME
            if not draft.get("head_birth_year"):
                return Reg.HEAD_BIRTH_YEAR
        if not draft.get("members_done"):
            member = draft.get("member")
            if member is not None:
                if not member.get("name"):
                    return Reg.MEMBER_NAME
                if not member.get("birth_year"):
                    return Reg.MEMBER_BIRTH_YEAR
                if not member.get("relation"):
                    return Reg.MEMBER_RELATION
                return Reg.GUARDIAN  # a child under 16, kept aside until a guardian agrees
            return Reg.MEMBERS
    return Reg.CONFIRM


def _continue(ctx: Context, draft: dict[str, Any]) -> None:
    _save(ctx, draft)
    ctx.goto(next_step(ctx, draft))


@router.command("dangky", "register", english="register", help_key=N_("help.cmd.register"))
async def cmd_register(ctx: Context, args: str) -> None:
    ctx.goto(Reg.TITLE)


@router.prompt(Reg.TITLE)
async def ask_title(ctx: Context) -> None:
    choices = []
    for title in ctx.app.catalog.titles():
        choices.append(Choice(title, title_name(ctx, ctx.app.catalog.for_title(title, ctx.today.year))))
    if ctx.proxy:
        question = with_proxy_banner(ctx, ctx.t("reg.proxy.ask_title", year=ctx.today.year))
    else:
        question = ctx.t("reg.ask_title", year=ctx.today.year)
    ctx.ask(question, choices)


@router.handle(Reg.TITLE)
async def on_title(ctx: Context, inp: Input) -> None:
    if inp.choice not in ctx.app.catalog.titles():
        ctx.say(ctx.t("reg.pick_title"))
        ctx.again()
        return
    draft = _draft(ctx)
    if draft.get("title") == inp.choice:
        ctx.say(ctx.t("reg.resume"))
        _continue(ctx, draft)
        return
    draft = {"title": inp.choice}
    subject = ctx.subject
    if subject is not None:
        draft.update(name=subject.full_name, birth_year=subject.birth_year, branch_id=subject.branch_id)
        existing = await _existing_registration(ctx, inp.choice, subject.branch_id)
        if existing is not None:
            _say_duplicate(ctx, existing)
            ctx.goto(Start.MENU)
            return
    elif ctx.proxy:
        branches = await _proxy_branches(ctx)
        if len(branches) == 1:
            draft["branch_id"] = branches[0].id
    _continue(ctx, draft)


def _say_duplicate(ctx: Context, existing: Submission) -> None:
    key = N_("reg.proxy.duplicate") if ctx.proxy else N_("reg.duplicate")
    ctx.say(ctx.t(key, reference=existing.reference, state=state_label(ctx, existing.state)))


async def _proxy_branches(ctx: Context) -> list[OrgUnit]:
    """The branches a leader may register people in (all of them for an admin)."""
    from bot.review.scope import branches_in, scope_for

    scope = await scope_for(ctx.session, ctx.person.id if ctx.person else None, "leader")
    return await branches_in(ctx.session, scope) if scope is not None else []


async def _existing_registration(ctx: Context, title: str, branch_id: int | None) -> Submission | None:
    """This person's (or the person acted for) registration for the title this year, if any."""
    subject = ctx.subject
    if subject is None or branch_id is None:
        return None
    branch = await ctx.session.get(OrgUnit, branch_id)
    campaign = await campaign_for(ctx.session, branch.parent_id, ctx.today) if branch else None
    if campaign is None:
        return None
    households = select(Household.id).where(
        (Household.head_person_id == subject.id) | (Household.registered_by_person_id == subject.id)
    )
    condition = (
        Submission.household_id.in_(households)
        if _subject(ctx, title) == "household"
        else Submission.person_id == subject.id
    )
    return await ctx.session.scalar(
        select(Submission).where(Submission.campaign_id == campaign.id, Submission.title == title, condition)
    )


def _is_household(ctx: Context) -> bool:
    return _subject(ctx, _draft(ctx)["title"]) == "household"


@router.prompt(Reg.NAME)
async def ask_name(ctx: Context) -> None:
    if ctx.proxy:
        ctx.ask(ctx.t("reg.proxy.ask_name"))
    elif _is_household(ctx):
        ctx.ask(ctx.t("reg.ask_name_household"))
    else:
        ctx.ask(ctx.t("reg.ask_name"))


@router.handle(Reg.NAME)
async def on_name(ctx: Context, inp: Input) -> None:
    name = read_name(ctx, inp)
    if name is not None:
        draft = _draft(ctx)
        draft["name"] = name
        _continue(ctx, draft)


def _read_year(ctx: Context, inp: Input, min_age: int) -> int | None:
    year = parse_year(inp.text or "")
    low, high = ctx.today.year - MAX_AGE, ctx.today.year - min_age
    if year is None or not low <= year <= high:
        ctx.say(ctx.t("reg.bad_year", low=low, high=high))
        ctx.again()
        return None
    return year


@router.prompt(Reg.BIRTH_YEAR)
async def ask_birth_year(ctx: Context) -> None:
    if ctx.proxy:
        ctx.ask(ctx.t("reg.proxy.ask_birth_year", name=_draft(ctx).get("name", "")))
    else:
        ctx.ask(ctx.t("reg.ask_birth_year"))


@router.handle(Reg.BIRTH_YEAR)
async def on_birth_year(ctx: Context, inp: Input) -> None:
    year = _read_year(ctx, inp, ADULT_MIN_AGE)
    if year is not None:
        draft = _draft(ctx)
        draft["birth_year"] = year
        _continue(ctx, draft)


@router.prompt(Reg.BRANCH)
async def ask_branch(ctx: Context) -> None:
    draft = _draft(ctx)
    if ctx.proxy:
        branches = await _proxy_branches(ctx)
        ctx.ask(ctx.t("reg.proxy.ask_branch"), [Choice(f"b{b.id}", b.name) for b in branches])
        return
    all_communes = await communes(ctx.session)
    if not all_communes:
        ctx.say(ctx.t("reg.no_commune"))
        ctx.goto(Start.MENU)
        return
    if len(all_communes) > 1 and not draft.get("commune_id"):
        ctx.ask(ctx.t("reg.ask_commune"), [Choice(f"c{c.id}", c.name) for c in all_communes])
        return
    commune_id = draft.get("commune_id") or all_communes[0].id
    branches = await branches_of(ctx.session, commune_id)
    ctx.ask(ctx.t("reg.ask_branch"), [Choice(f"b{b.id}", b.name) for b in branches])


@router.handle(Reg.BRANCH)
async def on_branch(ctx: Context, inp: Input) -> None:
    draft = _draft(ctx)
    value = inp.choice or _guess_choice(ctx, inp.text or "")
    if value and value.startswith("c"):
        draft["commune_id"] = int(value[1:])
        _save(ctx, draft)
        ctx.again()
        return
    if value and value.startswith("b") and any(c.value == value for c in ctx.current_choices()):
        draft["branch_id"] = int(value[1:])
        _continue(ctx, draft)
        return
    ctx.say(ctx.t("reg.pick_branch"))
    ctx.again()


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
        ctx.say(ctx.t("common.pick_yes_no"))
        ctx.again()
        return
    draft = _draft(ctx)
    draft["is_head"] = inp.choice == "yes"
    if draft["is_head"]:
        draft.pop("head_name", None)
        draft.pop("head_birth_year", None)
    _continue(ctx, draft)


@router.prompt(Reg.HEAD_NAME)
async def ask_head_name(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_head_name"))


@router.handle(Reg.HEAD_NAME)
async def on_head_name(ctx: Context, inp: Input) -> None:
    name = read_name(ctx, inp)
    if name is not None:
        draft = _draft(ctx)
        draft["head_name"] = name
        _continue(ctx, draft)


@router.prompt(Reg.HEAD_BIRTH_YEAR)
async def ask_head_birth_year(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_head_birth_year", name=_draft(ctx).get("head_name", "")))


@router.handle(Reg.HEAD_BIRTH_YEAR)
async def on_head_birth_year(ctx: Context, inp: Input) -> None:
    year = _read_year(ctx, inp, ADULT_MIN_AGE)
    if year is not None:
        draft = _draft(ctx)
        draft["head_birth_year"] = year
        _continue(ctx, draft)


def relation_label(ctx: Context, relation: str) -> str:
    key = RELATIONS[relation]
    return ctx.t(key)


def _member_lines(ctx: Context, members: list[dict[str, Any]]) -> str:
    return "\n".join(
        ctx.t(
            "reg.member_line",
            n=i,
            name=m["name"],
            year=m["birth_year"],
            relation=relation_label(ctx, m["relation"]),
        )
        for i, m in enumerate(members, start=1)
    )


@router.prompt(Reg.MEMBERS)
async def ask_members(ctx: Context) -> None:
    members = _draft(ctx).get("members", [])
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
    draft = _draft(ctx)
    members = draft.get("members", [])
    if inp.choice == "add":
        if len(members) >= MAX_MEMBERS:
            ctx.say(ctx.t("reg.members_full", max=MAX_MEMBERS))
            ctx.again()
            return
        draft["member"] = {}
        _continue(ctx, draft)
    elif inp.choice == "done":
        draft["members_done"] = True
        _continue(ctx, draft)
    elif inp.choice == "remove" and members:
        ctx.goto(Reg.REMOVE_MEMBER)
    else:
        # A typed name is the most natural way to add someone: take it as the new member's name.
        name = clean_name(inp.text or "") if inp.choice is None else None
        if name and len(members) < MAX_MEMBERS:
            draft["member"] = {"name": name}
            _continue(ctx, draft)
            return
        ctx.say(ctx.t("reg.members_pick"))
        ctx.again()


@router.prompt(Reg.MEMBER_NAME)
async def ask_member_name(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_member_name", n=len(_draft(ctx).get("members", [])) + 1))


@router.handle(Reg.MEMBER_NAME)
async def on_member_name(ctx: Context, inp: Input) -> None:
    name = read_name(ctx, inp)
    if name is not None:
        draft = _draft(ctx)
        draft["member"] = {"name": name}
        _continue(ctx, draft)


@router.prompt(Reg.MEMBER_BIRTH_YEAR)
async def ask_member_birth_year(ctx: Context) -> None:
    ctx.ask(ctx.t("reg.ask_member_birth_year", name=_draft(ctx)["member"]["name"]))


@router.handle(Reg.MEMBER_BIRTH_YEAR)
async def on_member_birth_year(ctx: Context, inp: Input) -> None:
    year = _read_year(ctx, inp, 0)
    if year is not None:
        draft = _draft(ctx)
        draft["member"] = {**draft["member"], "birth_year": year}
        _continue(ctx, draft)


@router.prompt(Reg.MEMBER_RELATION)
async def ask_member_relation(ctx: Context) -> None:
    name = _draft(ctx)["member"]["name"]
    choices = [Choice(key, ctx.t(label)) for key, label in RELATIONS.items() if key != "head"]
    ctx.ask(ctx.t("reg.ask_member_relation", name=name), choices)


@router.handle(Reg.MEMBER_RELATION)
async def on_member_relation(ctx: Context, inp: Input) -> None:
    if inp.choice not in RELATIONS or inp.choice == "head":
        ctx.say(ctx.t("reg.pick_relation"))
        ctx.again()
        return
    draft = _draft(ctx)
    member = {**draft.pop("member"), "relation": inp.choice}
    if _age(ctx, member) < GUARDIAN_BELOW_AGE:
        draft["member"] = member  # recorded only once a parent or guardian confirms
        _continue(ctx, draft)
        return
    _add_member(ctx, draft, member)


def _age(ctx: Context, member: dict[str, Any]) -> int:
    return ctx.today.year - int(member["birth_year"])


def _add_member(ctx: Context, draft: dict[str, Any], member: dict[str, Any]) -> None:
    draft["members"] = [*draft.get("members", []), member]
    ctx.say(ctx.t("reg.member_added", name=member["name"]))
    _continue(ctx, draft)


async def _guardian_question(ctx: Context, member: dict[str, Any]) -> tuple[str, ShownText]:
    """The confirmation asked for a child under 16: from a parent or guardian, and from 7 years
    old the child's own agreement too. Its exact words are what the consent row fingerprints."""
    older = _age(ctx, member) >= CHILD_CONSENT_AGE
    if ctx.proxy:
        key = N_("reg.proxy.guardian_ask_older") if older else N_("reg.proxy.guardian_ask")
    else:
        key = N_("reg.guardian_ask_older") if older else N_("reg.guardian_ask")
    text = ctx.t(key, name=member["name"], year=member["birth_year"])
    return text, shown_text(ctx, text, await controller_for(ctx, _draft(ctx).get("branch_id")))


@router.prompt(Reg.GUARDIAN)
async def ask_guardian(ctx: Context) -> None:
    text, shown = await _guardian_question(ctx, _draft(ctx)["member"])
    ctx.set(guardian_shown=shown.to_json())  # what a "yes" agrees to
    ctx.ask(
        with_proxy_banner(ctx, text),
        [Choice("yes", ctx.t("reg.guardian_confirm")), Choice("no", ctx.t("reg.guardian_skip"))],
    )


@router.handle(Reg.GUARDIAN)
async def on_guardian(ctx: Context, inp: Input) -> None:
    draft = _draft(ctx)
    member = draft.get("member") or {}
    if inp.choice == "yes":
        shown = ShownText.from_json(ctx.data.get("guardian_shown")) or (await _guardian_question(ctx, member))[1]
        ctx.drop("guardian_shown")
        draft.pop("member")
        _add_member(ctx, draft, {**member, "guardian": {**shown.to_json(), "at": ctx.now.isoformat()}})
    elif inp.choice == "no":
        ctx.drop("guardian_shown")
        draft.pop("member")
        ctx.say(ctx.t("reg.guardian_refused", name=member.get("name", "")))
        _continue(ctx, draft)
    else:
        ctx.say(ctx.t("reg.guardian_pick"))
        ctx.again()


@router.prompt(Reg.REMOVE_MEMBER)
async def ask_remove_member(ctx: Context) -> None:
    members = _draft(ctx).get("members", [])
    choices = [Choice(f"m{i}", f"{m['name']} ({m['birth_year']})") for i, m in enumerate(members)]
    ctx.ask(ctx.t("reg.ask_remove_member"), [*choices, back_choice(ctx)])


@router.handle(Reg.REMOVE_MEMBER)
async def on_remove_member(ctx: Context, inp: Input) -> None:
    draft = _draft(ctx)
    members = list(draft.get("members", []))
    if inp.choice and inp.choice.startswith("m") and inp.choice[1:].isdigit() and int(inp.choice[1:]) < len(members):
        removed = members.pop(int(inp.choice[1:]))
        draft["members"] = members
        ctx.say(ctx.t("reg.member_removed", name=removed["name"]))
        draft["members_done"] = False
        _continue(ctx, draft)
    elif inp.choice == "back":
        ctx.goto(Reg.MEMBERS)
    else:
        ctx.say(ctx.t("reg.pick_member"))
        ctx.again()


async def _summary(ctx: Context, draft: dict[str, Any]) -> str:
    branch = await ctx.session.get(OrgUnit, draft["branch_id"])
    criteria_set = ctx.app.catalog.for_title(draft["title"], ctx.today.year)
    lines = [ctx.t("reg.summary_title", title=title_name(ctx, criteria_set))]
    if ctx.proxy and criteria_set.subject == "household":
        lines.append(ctx.t("reg.summary_head", name=draft["name"], year=draft["birth_year"]))
    elif criteria_set.subject == "household":
        lines.append(ctx.t("reg.summary_registrant", name=draft["name"], year=draft["birth_year"]))
    else:
        lines.append(ctx.t("reg.summary_person", name=draft["name"], year=draft["birth_year"]))
    lines.append(ctx.t("reg.summary_branch", branch=branch.name if branch else "?"))
    if criteria_set.subject == "household":
        if ctx.proxy:
            pass  # the person acted for is the head, named above
        elif draft.get("is_head"):
            lines.append(ctx.t("reg.summary_head_self"))
        else:
            lines.append(ctx.t("reg.summary_head", name=draft["head_name"], year=draft["head_birth_year"]))
        members = draft.get("members", [])
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
    draft = _draft(ctx)
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
        ctx.drop("reg")
        ctx.say(ctx.t("reg.cancelled"))
        ctx.goto(Start.MENU)
    else:
        ctx.say(ctx.t("reg.pick_confirm"))
        ctx.again()


EDIT_FIELDS = {
    "name": (N_("reg.field_name"), ("name",)),
    "birth_year": (N_("reg.field_birth_year"), ("birth_year",)),
    "branch": (N_("reg.field_branch"), ("branch_id", "commune_id")),
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
        ctx.say(ctx.t("reg.pick_field"))
        ctx.again()
        return
    draft = _draft(ctx)
    for field in EDIT_FIELDS[inp.choice][1]:
        draft.pop(field, None)
    _continue(ctx, draft)


async def _finalize(ctx: Context) -> None:
    draft = _draft(ctx)
    branch = await ctx.session.get(OrgUnit, draft["branch_id"])
    campaign = await campaign_for(ctx.session, branch.parent_id, ctx.today) if branch else None
    if campaign is None:
        ctx.say(ctx.t("reg.no_campaign"))
        ctx.goto(Start.MENU)
        return
    criteria_set = ctx.app.catalog.for_title(draft["title"], campaign.year)
    existing = await _existing_registration(ctx, draft["title"], branch.id)
    if existing is not None:
        ctx.drop("reg")
        _say_duplicate(ctx, existing)
        ctx.goto(Start.MENU)
        return
    if ctx.proxy and branch.id not in {b.id for b in await _proxy_branches(ctx)}:
        ctx.say(ctx.t("proxy.no_longer"))
        ctx.goto(Start.MENU)
        return

    person = ctx.subject
    created = person is None
    if person is None:
        person = Person(full_name=draft["name"], created_at=ctx.now)
        if ctx.proxy:
            # Registered by the branch leader for someone without a smartphone; the leader
            # confirmed that person's consent before starting.
            person.created_by_person_id = ctx.person.id if ctx.person else None
            person.consent_at = ctx.now if ctx.data.get("proxy_consent") else None
        ctx.session.add(person)
    person.full_name = draft["name"]
    person.birth_year = draft["birth_year"]
    person.branch_id = branch.id
    person.locale = ctx.locale
    if not ctx.proxy:
        person.consent_at = person.consent_at or ctx.account.consent_at
    await ctx.session.flush()
    if ctx.proxy:
        proxy_consent = ctx.data.get("proxy_consent")
        if created and isinstance(proxy_consent, dict):
            await _record_proxy_consent(ctx, person, proxy_consent)
        ctx.act_for(person)
    else:
        ctx.account.person_id = person.id
        ctx.person = person
        # The consent given before registration (on this account) is now theirs.
        await attach_person(ctx.session, ctx.account.id, person.id)
    actor = ctx.person

    household_id = None
    if criteria_set.subject == "household":
        household = await _household_for(ctx, draft, person, branch)
        household_id = household.id
    try:
        submission = await create_submission(
            ctx.session,
            campaign_id=campaign.id,
            year=campaign.year,
            criteria_set=criteria_set,
            branch_id=branch.id,
            person_id=None if household_id else person.id,
            household_id=household_id,
            actor_person_id=actor.id if actor else person.id,
            now=ctx.now,
        )
    except DuplicateRegistration as dup:
        ctx.drop("reg")
        _say_duplicate(ctx, dup.existing)
        ctx.goto(Start.MENU)
        return
    if household_id is not None:
        await _record_guardians(ctx, draft, person, household_id)
    ctx.drop("reg")
    ctx.set(sub=submission.id)
    ctx.say(ctx.t("reg.done", reference=submission.reference, title=title_name(ctx, criteria_set)))
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
        ctx.session, ConsentKind.GIVEN, ConsentMethod.PROXY, ShownText.from_json(data),
        at=_confirmed_at(data, ctx.now), person_id=person.id,
        recorded_by_person_id=ctx.person.id if ctx.person else None,
    )


async def _record_guardians(ctx: Context, draft: dict[str, Any], registrant: Person, household_id: int) -> None:
    """One row per child under 16 whose parent or guardian confirmed (the child too, from 7)."""
    for member in draft.get("members", []):
        data = member.get("guardian")
        if not isinstance(data, dict):
            continue
        await record(
            ctx.session, ConsentKind.GUARDIAN,
            ConsentMethod.PROXY if ctx.proxy else ConsentMethod.CHAT, ShownText.from_json(data),
            at=_confirmed_at(data, ctx.now), person_id=registrant.id,
            account_id=None if ctx.proxy else ctx.account.id,
            recorded_by_person_id=ctx.person.id if ctx.proxy and ctx.person else None,
            household_id=household_id, purposes=GUARDIAN_PURPOSES,
        )


async def _household_for(ctx: Context, draft: dict[str, Any], person: Person, branch: OrgUnit) -> Household:
    """Reuse the person's household from an earlier year (with today's member list) or make one."""
    members = [MemberSpec(m["name"], m["birth_year"], m["relation"]) for m in draft.get("members", [])]
    if draft["is_head"]:
        head = person
        household = await ctx.session.scalar(select(Household).where(Household.head_person_id == person.id))
    else:
        household = None
        for candidate in await ctx.session.scalars(
            select(Household).where(Household.registered_by_person_id == person.id)
        ):
            head_person = await ctx.session.get(Person, candidate.head_person_id)
            if head_person and fold(head_person.full_name) == fold(draft["head_name"]):
                household = candidate
                break
        if household is not None:
            head = await ctx.session.get(Person, household.head_person_id)
        else:
            head = Person(
                full_name=draft["head_name"],
                birth_year=draft["head_birth_year"],
                branch_id=branch.id,
                locale=ctx.locale,
                created_by_person_id=ctx.person.id if ctx.person else person.id,
                created_at=ctx.now,
            )
            ctx.session.add(head)
            await ctx.session.flush()
        head.birth_year = draft["head_birth_year"]
    if household is None:
        return await create_household(
            ctx.session, branch_id=branch.id, head=head, members=members, registered_by=person, now=ctx.now
        )
    await ctx.session.refresh(household, ["members"])
    household.branch_id = branch.id
    replace_members(household, head, members)
    await ctx.session.flush()
    return household
