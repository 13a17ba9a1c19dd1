"""The declaration's draft keeps the conversation entries it always had: the engine's load query
joins the submission on the top-level "sub", and conversations under way carry on unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.flows.consent import ConsentDraft, PendingCommand
from bot.flows.context import Context
from bot.flows.drafts import DeclarationDraft, Draft, KeptPhoto, ProxyDraft, RegistrationDraft, TypedNote
from bot.flows.escape import EscapeDraft
from bot.flows.invite import InviteDraft, RevokeDraft
from bot.flows.leader import MembersDraft, ProxySearchDraft
from bot.flows.province import ProvinceDraft
from bot.flows.start import LanguageDraft
from bot.flows.zns_phone import PhoneDraft
from bot.review.traces import PROXY_KEY
from bot.storage.models import Conversation

BLOB = {
    "sha256": "ab" * 32,
    "path": "ab/abcd.jpg",
    "size": 10,
    "mime": "image/jpeg",
    "width": 2,
    "height": 3,
    "dhash": None,
}
STORED = {
    "sub": 7,
    "item": "3",
    "return_summary": True,
    "pending_photo": {"blob": BLOB, "message_id": None},
    "_note": {"item": "3", "text": "hai dòng"},
    "_deadline": True,
    "_closes": "2026-05-31",
}


def test_declaration_reads_and_writes_the_old_entries() -> None:
    others = {"_choices": [["1", "x"]], "reg": {"name": "A"}, "_trail": []}
    draft = DeclarationDraft.read({**STORED, **others})
    assert draft == DeclarationDraft(
        sub=7,
        item="3",
        return_summary=True,
        pending_photo=KeptPhoto(BLOB, None),
        note=TypedNote("3", "hai dòng"),
        deadline=True,
        closes="2026-05-31",
    )
    assert draft.pending_photo is not None and draft.pending_photo.stored.path == "ab/abcd.jpg"
    assert draft.written() == STORED
    assert set(DeclarationDraft.entries()) == set(STORED)


def test_cleared_fields_leave_no_entries() -> None:
    draft = DeclarationDraft.read(STORED)
    left = draft.left()
    assert left.written() == {k: v for k, v in STORED.items() if k not in ("sub", "item", "return_summary")}
    assert replace(left, pending_photo=None, note=None, deadline=False, closes=None).written() == {}
    assert DeclarationDraft.read({}) == DeclarationDraft()


def test_nested_drafts_keep_one_entry() -> None:
    assert RegistrationDraft.entries() == ("reg",)
    assert RegistrationDraft(name="A").written() == {"reg": RegistrationDraft(name="A").to_json()}


def test_keep_and_forget_touch_only_the_drafts_entries() -> None:
    conv = Conversation(data={**STORED, "for": 4, "_choices": []})
    ctx = Context(app=None, session=None, account=None, conv=conv, msg=None, person=None)  # type: ignore[arg-type]
    ctx.keep(replace(ctx.draft(DeclarationDraft), item=None, pending_photo=None))
    assert "item" not in conv.data and "pending_photo" not in conv.data and conv.data["for"] == 4
    ctx.keep(ctx.draft(DeclarationDraft).left())
    assert "sub" not in conv.data and conv.data["_closes"] == "2026-05-31"
    ctx.forget(DeclarationDraft)
    assert conv.data == {"for": 4, "_choices": []}


SHOWN = {"version": "2026-12", "sha256": "cd" * 32, "locale": "vi", "controller": "Hội Khuyến học"}
# Each draft as the untyped entries stored it, with what it reads as.
OLD_ENTRIES = [
    (
        ProxyDraft,
        {"for": 4, "proxy_consent": {**SHOWN, "at": "2026-05-01T08:00:00+07:00"}, "proxy_consent_shown": SHOWN},
        ProxyDraft(subject=4, consent={**SHOWN, "at": "2026-05-01T08:00:00+07:00"}, shown=SHOWN),
    ),
    (ProxyDraft, {"for": 0}, ProxyDraft(subject=0)),  # someone not registered yet
    (
        ConsentDraft,
        {
            "consent_shown": SHOWN,
            "consent_brief": True,
            "after_consent": {"command": "duyet", "args": "CD-2026-000001"},
            "invite": "ABCD-2345",
        },
        ConsentDraft(SHOWN, True, PendingCommand("duyet", "CD-2026-000001"), "ABCD-2345"),
    ),
    (ConsentDraft, {"after_consent": {"command": "xuat", "args": ""}}, ConsentDraft(pending=PendingCommand("xuat"))),
    (LanguageDraft, {"_return": "reg.name"}, LanguageDraft(back="reg.name")),
    (InviteDraft, {"inv": {}}, InviteDraft()),
    (InviteDraft, {"inv": {"role": "officer"}}, InviteDraft(role="officer")),
    (RevokeDraft, {"revoke": 12}, RevokeDraft(grant=12)),
    (ProvinceDraft, {"prov": {"year": 2025}}, ProvinceDraft(year=2025)),
    (
        EscapeDraft,
        {"_trail": [["decl.item", "1"], ["decl.item", "2"]], "_cancel_from": "decl.item"},
        EscapeDraft(trail=[["decl.item", "1"], ["decl.item", "2"]], cancel_from="decl.item"),
    ),
    (PhoneDraft, {"phone_text": "ef" * 32}, PhoneDraft(fingerprint="ef" * 32)),
    (MembersDraft, {"members_branch": 3}, MembersDraft(branch=3)),
    (ProxySearchDraft, {"proxy_search": "Hoa"}, ProxySearchDraft(text="Hoa")),
]


@pytest.mark.parametrize("kind,stored,typed", OLD_ENTRIES, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_flow_drafts_read_and_write_the_old_entries(kind: type[Draft], stored: dict, typed: Draft) -> None:
    others = {"_choices": [["1", "x"]], "reg": {"name": "A"}, "sub": 7}
    assert kind.read({**stored, **others}) == typed
    assert typed.written() == stored
    assert set(stored) <= set(kind.entries())
    conv = Conversation(data={**stored, **others})
    ctx = Context(app=None, session=None, account=None, conv=conv, msg=None, person=None)  # type: ignore[arg-type]
    ctx.keep(ctx.draft(kind))
    assert conv.data == {**stored, **others}
    ctx.forget(kind)
    assert conv.data == others


def test_proxy_mode_is_the_for_entry() -> None:
    """Deleting a person's data finds the leaders acting for them by this entry (review/traces.py)."""
    assert ProxyDraft.STORED["subject"] == PROXY_KEY
    conv = Conversation(data={"_choices": []})
    ctx = Context(app=None, session=None, account=None, conv=conv, msg=None, person=None)  # type: ignore[arg-type]
    assert not ctx.proxy
    ctx.act_for(None)
    assert ctx.proxy and conv.data == {"_choices": [], "for": 0}
    ctx.keep(replace(ctx.draft(ProxyDraft), shown=SHOWN))
    ctx.stop_acting()
    assert not ctx.proxy and conv.data == {"_choices": []}
