"""What a state handler works with: the person, their conversation, the database session,
and the replies being built. Replies go out only after the transaction commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from bot.clock import local_date
from bot.flows.drafts import D, DeclarationDraft, Draft, ProxyDraft, RegistrationDraft
from bot.i18n import Translator, get_translator
from bot.messages import Choice, Incoming, Kind, Outgoing
from bot.storage.evidence import CleanPhoto
from bot.storage.models import ChannelAccount, Conversation, Person

if TYPE_CHECKING:
    from bot.app import App
    from bot.flows.router import CommandSpec


@dataclass
class Input:
    """A person's message after resolving buttons, numbers and typed labels against the prompt."""

    kind: Kind
    choice: str | None = None
    text: str | None = None
    # A photo received, checked and cleaned but not yet on disk: the flow that keeps it saves it.
    photo: CleanPhoto | None = None
    photo_error: str | None = None


@dataclass
class Context:
    app: App
    session: AsyncSession
    account: ChannelAccount
    conv: Conversation
    msg: Incoming
    person: Person | None
    replies: list[Outgoing] = field(default_factory=list)
    next_state: str | None = None
    # The person a branch leader is acting for (proxy registration and declaration), loaded by
    # the engine from the conversation's ProxyDraft after checking the leader's scope.
    proxy_subject: Person | None = None
    # Work to do once this message's transaction has committed (e.g. removing files).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Every command, in help order (the help text lists those the person may use); set by the engine.
    commands: Sequence[CommandSpec] = ()
    # The bot has never talked with this account before this message; and whether the replies
    # already say who is talking (the engine adds the welcome to a first contact otherwise).
    first_contact: bool = False
    greeted: bool = False
    # How the person writing is addressed (their commune's setting; set by the engine).
    address: str = "neutral"

    @property
    def t(self) -> Translator:
        return get_translator(self.account.locale, self.address)

    @property
    def locale(self) -> str:
        return self.t.locale

    @property
    def now(self) -> datetime:
        return self.app.clock.now()

    @property
    def today(self) -> date:
        return local_date(self.now, self.app.settings.tz)

    @property
    def proxy(self) -> bool:
        """True while a branch leader is registering or declaring for someone else."""
        return self.draft(ProxyDraft).subject is not None

    @property
    def subject(self) -> Person | None:
        """Whom the resident flows are about: the person writing, or whom they act for."""
        return self.proxy_subject if self.proxy else self.person

    def act_for(self, person: Person | None) -> None:
        """Start acting for `person` (None: someone not registered yet)."""
        self.keep(replace(self.draft(ProxyDraft), subject=person.id if person is not None else 0))
        self.proxy_subject = person

    def stop_acting(self) -> str:
        """Leave proxy mode; returns the name of the person acted for."""
        name = self.proxy_subject.full_name if self.proxy_subject is not None else ""
        self.forget(ProxyDraft)
        self.forget(RegistrationDraft)
        # All of the other person's declaration goes: a note typed or a photo kept for them must
        # not end up on the leader's own application.
        self.forget(DeclarationDraft)
        self.proxy_subject = None
        return name

    @property
    def state(self) -> str:
        return self.conv.state

    @property
    def data(self) -> dict[str, Any]:
        return self.conv.data

    def set(self, **values: Any) -> None:
        self.conv.data = {**self.conv.data, **values}
        flag_modified(self.conv, "data")

    def drop(self, *keys: str) -> None:
        self.conv.data = {k: v for k, v in self.conv.data.items() if k not in keys}
        flag_modified(self.conv, "data")

    def draft(self, kind: type[D]) -> D:
        """This flow's draft (empty when it has none yet)."""
        return kind.read(self.conv.data)

    def keep(self, draft: Draft) -> None:
        entries = draft.entries()
        self.conv.data = {k: v for k, v in self.conv.data.items() if k not in entries} | draft.written()
        flag_modified(self.conv, "data")

    def forget(self, kind: type[Draft]) -> None:
        self.drop(*kind.entries())

    def say(self, text: str) -> None:
        self.replies.append(Outgoing(text=text))

    def welcome_text(self) -> str:
        """The greeting, which says that an automated assistant answers (Zalo's terms ask the
        first message to say so; it is only fair on every channel)."""
        return self.t("start.welcome", year=self.today.year)

    def welcome(self) -> None:
        self.say(self.welcome_text())
        self.greeted = True

    def ask(self, text: str, choices: list[Choice] | None = None) -> None:
        """Ask a question; its choices become what numbers and labels are matched against."""
        choices = choices or []
        self.conv.prompt_seq += 1
        self.set(_choices=[[c.value, c.label] for c in choices])
        self.replies.append(Outgoing(text=text, choices=choices, prompt_seq=self.conv.prompt_seq))

    def goto(self, state: str) -> None:
        """Move to a state; its prompt runs once the current handler returns."""
        self.next_state = state

    def again(self) -> None:
        """Ask the current question again (after a friendly correction)."""
        self.next_state = self.conv.state

    def retry(self, key: str, **params: Any) -> None:
        """Say the catalog text `key` (a friendly correction) and ask the current question again."""
        self.say(self.t(key, **params))
        self.again()

    def current_choices(self) -> list[Choice]:
        return [Choice(value, label) for value, label in self.data.get("_choices", [])]
