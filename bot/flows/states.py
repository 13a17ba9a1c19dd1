"""Every conversation state by name, one class a flow. Prompts, handlers and `ctx.goto` use these
constants, so a misspelt state fails at import; `Router.check` (run by `build_router`) then fails at
start if a name here has no prompt, or a flow registers a state not named here."""

from __future__ import annotations


class States:
    """A flow's state names: class attributes holding strings."""

    @classmethod
    def names(cls) -> list[str]:
        return [v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)]


class Start(States):
    """First contact, consent, the main menu and the language (start.py)."""

    NEW = "new"
    CONSENT = "consent"
    MENU = "menu"
    LANG = "lang"


class Reg(States):
    """Registering for a title (register.py)."""

    TITLE = "reg.title"
    NAME = "reg.name"
    BIRTH_YEAR = "reg.birth_year"
    BRANCH = "reg.branch"
    TARGET_GROUP = "reg.target_group"
    IS_HEAD = "reg.is_head"
    HEAD_NAME = "reg.head_name"
    HEAD_BIRTH_YEAR = "reg.head_birth_year"
    MEMBERS = "reg.members"
    MEMBER_NAME = "reg.member_name"
    MEMBER_BIRTH_YEAR = "reg.member_birth_year"
    MEMBER_RELATION = "reg.member_relation"
    GUARDIAN = "reg.guardian"
    REMOVE_MEMBER = "reg.remove_member"
    CONFIRM = "reg.confirm"
    EDIT = "reg.edit"


class Decl(States):
    """Self-assessment, item by item (declare.py)."""

    CHOOSE = "decl.choose"
    INTRO = "decl.intro"
    ITEM = "decl.item"
    PHOTOS = "decl.photos"
    SUMMARY = "decl.summary"
    PICK_ITEM = "decl.pick_item"
    CONFIRM_SUBMIT = "decl.confirm_submit"
    REMOVE_PHOTO = "decl.remove_photo"


class Status(States):
    """What a person has filed and where it stands (status.py)."""

    SHOW = "status"


class Review(States):
    """Reviewing in chat (staff.py)."""

    LIST = "rv.list"
    FILTER = "rv.filter"
    FILTER_VALUE = "rv.filter_value"
    VIEW = "rv.view"
    CONFIRM = "rv.confirm"
    NOTE = "rv.note"
    OVERRIDE = "rv.override"


class Leader(States):
    """A branch leader's members and acting for someone (leader.py)."""

    MEMBERS_BRANCH = "lead.members_branch"
    MEMBERS = "lead.members"
    PROXY_PICK = "proxy.pick"
    PROXY_CONSENT = "proxy.consent"
    PROXY_HOME = "proxy.home"


class Invite(States):
    """Invite codes for staff (invite.py)."""

    ROLE = "inv.role"
    UNIT = "inv.unit"
    REDEEM = "invite.redeem"
    REVOKE_PICK = "rev.pick"
    REVOKE_CONFIRM = "rev.confirm"


class Reports(States):
    """Statistics and exports (reports.py)."""

    COMMUNE = "rep.commune"
    EXPORT_KIND = "exp.kind"
    EXPORT_FORMAT = "exp.format"
    STATS = "rep.stats"


class Province(States):
    """The province role's yearly report (province.py)."""

    PICK = "prov.pick"


class MyData(States):
    """A person's own data (mydata.py)."""

    CONFIRM = "mydata.confirm"


class Consent(States):
    """Withdrawing consent (consent.py)."""

    WITHDRAW = "consent.withdraw"


class ZnsPhone(States):
    """A phone number for ZNS reminders (zns_phone.py)."""

    CONSENT = "zns.phone_consent"
    NUMBER = "zns.phone_number"


class Escape(States):
    """Words that work at every question (escape.py): the confirmation before cancelling."""

    CANCEL_CONFIRM = "cancel.confirm"


ALL: tuple[type[States], ...] = (
    Start,
    Reg,
    Decl,
    Status,
    Review,
    Leader,
    Invite,
    Reports,
    Province,
    MyData,
    Consent,
    ZnsPhone,
    Escape,
)
