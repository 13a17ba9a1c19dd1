"""Typed drafts: a flow's answers so far, kept in the conversation as plain dicts.

The registration draft lives here rather than in its flow because the cancel and proxy code
discard it too (and `Context` cannot import the flows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar


@dataclass
class Record:
    """A dataclass kept in the conversation as a plain dict, without its empty fields; keys it
    no longer has are ignored when read back."""

    @classmethod
    def from_json(cls: type[R], raw: Any) -> R:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


R = TypeVar("R", bound=Record)


@dataclass
class Draft(Record):
    """A flow's answers so far, typed: subclass as a dataclass with defaults and a `KEY`, the one
    entry of the conversation it lives under (so flows neither share nor clear each other's
    fields)."""

    KEY: ClassVar[str]


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
