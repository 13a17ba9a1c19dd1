"""Typed drafts: a flow's answers so far, kept in the conversation as plain dicts.

The registration, declaration and proxy drafts live here rather than in their flows because the
cancel, menu and proxy code read or discard them too (and `Context` cannot import the flows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, Self, TypeVar

from bot.storage.evidence import StoredBlob


@dataclass
class Record:
    """A dataclass kept in the conversation as a plain dict, without its empty fields; keys it
    no longer has are ignored when read back."""

    @classmethod
    def from_json(cls: type[R], raw: Any) -> R:
        names = _field_names(cls)
        return cls(**{k: v for k, v in (raw or {}).items() if k in names})

    def to_json(self) -> dict[str, Any]:
        # What asdict() gives, without its deep copy of every value (drafts are read and written
        # several times per message): nested records whole, lists and dicts copied.
        return {name: _plain(value) for name in _field_names(type(self)) if (value := getattr(self, name)) is not None}


# Per class, computed once: drafts are read and written several times per message.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_STORED_NAMES: dict[type, dict[str, str]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


# Values stored as they are; most of a draft (and all of the escape words' trail of [state,
# item] pairs) is these, and telling them apart first saves the dataclass check on each.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [item if type(item) in _SCALARS else _plain(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


R = TypeVar("R", bound=Record)


@dataclass
class Draft(Record):
    """A flow's answers so far, typed: subclass as a dataclass with defaults and a `KEY`, the one
    entry of the conversation it lives under (so flows neither share nor clear each other's
    fields). One kept over several entries says so in `entries`, `read` and `written`."""

    KEY: ClassVar[str]

    @classmethod
    def entries(cls) -> tuple[str, ...]:
        """The conversation's entries the draft occupies (forgetting it removes them)."""
        return (cls.KEY,)

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        """The draft from the conversation's entries (empty when it has none yet)."""
        return cls.from_json(data.get(cls.KEY))

    def written(self) -> dict[str, Any]:
        """The entries to store; those of `entries()` not given here are removed."""
        return {self.KEY: self.to_json()}


D = TypeVar("D", bound=Draft)


@dataclass
class MemberDraft(Record):
    """A household member as registration asks for them; one under 16 carries the confirmation
    given by a parent or guardian (the text shown and when)."""

    name: str | None = None
    birth_year: int | None = None
    relation: str | None = None
    guardian: dict[str, Any] | None = None


@dataclass
class RegistrationDraft(Draft):
    """Registration's answers so far: the first one missing decides the next question. Stored in
    the shape the untyped draft had, so conversations under way keep their answers."""

    KEY: ClassVar[str] = "reg"
    title: str | None = None
    name: str | None = None
    birth_year: int | None = None
    commune_id: int | None = None  # several communes in one installation: the one picked
    commune_hits: list[int] = field(default_factory=list)  # communes matching a typed name
    branch_id: int | None = None
    province: str | None = None  # the branch's province code (its own forms may apply)
    target_group: str | None = None
    is_head: bool | None = None  # a household: is the person registering its head?
    head_name: str | None = None
    head_birth_year: int | None = None
    members: list[MemberDraft] = field(default_factory=list)
    members_done: bool = False
    member: MemberDraft | None = None  # the member being added (a child waits for a guardian)
    guardian_shown: dict[str, Any] | None = None  # the guardian question as shown: what "yes" agrees to

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        draft = super().from_json(raw)
        draft.members = [MemberDraft.from_json(m) for m in draft.members]
        if draft.member is not None:
            draft.member = MemberDraft.from_json(draft.member)
        return draft

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["members"] = [m.to_json() for m in self.members]
        if self.member is not None:
            data["member"] = self.member.to_json()
        return data

    def at_hand(self) -> MemberDraft:
        """The member being added: set before the member questions are reached."""
        if self.member is None:
            raise ValueError("no household member at hand")
        return self.member


@dataclass
class KeptPhoto(Record):
    """A photo sent at the summary before its item was picked: already on disk, not yet evidence."""

    blob: dict[str, Any] = field(default_factory=dict)  # the StoredBlob's fields
    message_id: str | None = None

    @property
    def stored(self) -> StoredBlob:
        return StoredBlob(**self.blob)


@dataclass
class TypedNote(Record):
    """A note typed at an item's level question before any level: saved with the level."""

    item: str = ""
    text: str = ""


@dataclass
class FlatDraft(Draft):
    """A draft stored flat: each field an entry of the conversation itself, under the field's
    name or the one `STORED` gives it (the names the untyped entries had, so conversations under
    way carry on). Empty fields are not stored: None, an empty list, and flags while unset."""

    STORED: ClassVar[dict[str, str]] = {}

    @classmethod
    def _names(cls) -> dict[str, str]:
        return _stored_names(cls)

    @classmethod
    def entries(cls) -> tuple[str, ...]:
        return tuple(cls._names().values())

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> Self:
        return cls.from_json({name: data[key] for name, key in cls._names().items() if key in data})

    def written(self) -> dict[str, Any]:
        data = self.to_json()
        return {key: data[name] for name, key in self._names().items() if name in data and not _empty(data[name])}


def _stored_names(cls: type[FlatDraft]) -> dict[str, str]:
    """Field name to entry name (the same dict every time: do not change it)."""
    names = _STORED_NAMES.get(cls)
    if names is None:
        names = _STORED_NAMES[cls] = {name: cls.STORED.get(name, name) for name in _field_names(cls)}
    return names


def _empty(value: Any) -> bool:
    return value is False or (isinstance(value, list) and not value)


@dataclass
class DeclarationDraft(FlatDraft):
    """Where a declaration stands: the submission at hand and its current item, whether editing
    returns to the summary, and what waits for a next step.

    Stored flat under the names the untyped entries had: the engine's load query
    (bot/storage/deliveries.py) joins the submission on the top-level "sub" to save a query per
    step. A kept photo and a typed note are stored whole (a photo's message id even when None)."""

    KEY: ClassVar[str] = "sub"  # the entry the engine's load query reads
    # Entries named otherwise than their field (the leading "_": bookkeeping, not an answer).
    STORED: ClassVar[dict[str, str]] = {"note": "_note", "deadline": "_deadline", "closes": "_closes"}
    sub: int | None = None
    item: str | None = None
    return_summary: bool = False  # the item was picked at the summary: back there when done
    pending_photo: KeptPhoto | None = None
    note: TypedNote | None = None
    deadline: bool = False  # the next item question shown also says the deadline
    closes: str | None = None  # a "closed" commune's last day (ISO), kept to spare a query per step

    @classmethod
    def from_json(cls, raw: Any) -> Self:
        draft = super().from_json(raw)
        if draft.pending_photo is not None:
            draft.pending_photo = KeptPhoto.from_json(draft.pending_photo)
        if draft.note is not None:
            draft.note = TypedNote.from_json(draft.note)
        return draft

    def left(self) -> Self:
        """The draft once the submission at hand is left: no submission, item or way back to the
        summary (the menu, registration and the end of proxy mode leave it)."""
        return replace(self, sub=None, item=None, return_summary=False)


@dataclass
class ProxyDraft(FlatDraft):
    """A branch leader acting for someone: whom (a person's id; 0 for someone not registered yet),
    the consent they confirmed for a new person (the text shown and when, recorded once
    registration creates the person) and the consent text as shown, until answered. Here because
    `Context` reads it (proxy mode) and the engine checks the leader's scope on it."""

    STORED: ClassVar[dict[str, str]] = {
        "subject": "for",
        "consent": "proxy_consent",
        "shown": "proxy_consent_shown",
    }
    subject: int | None = None
    consent: dict[str, Any] | None = None
    shown: dict[str, Any] | None = None  # a ShownText's fields
