"""The declaration's draft keeps the conversation entries it always had: the engine's load query
joins the submission on the top-level "sub", and conversations under way carry on unchanged."""

from __future__ import annotations

from dataclasses import replace

from bot.flows.context import Context
from bot.flows.drafts import DeclarationDraft, KeptPhoto, RegistrationDraft, TypedNote
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
