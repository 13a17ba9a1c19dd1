"""The one place a message becomes replies.

Order of work for every inbound message:
1. download, check and clean a photo (outside any database transaction, decoding in a worker
   thread), unless a quick look shows the conversation would not take it;
2. in one transaction: skip a duplicate delivery, load the person's conversation, run the state
   handler and the next prompt, store the new position *and* the replies (a photo's file is
   written here, by the flow that keeps it: only where the question takes photos, after consent);
3. only then send the replies, and mark the message as answered.
A crash before (2) commits loses nothing the platform will not redeliver; a crash between (2)
and (3) is healed by the redelivery, which resends the stored replies instead of re-running —
once the worker's lease on them (REPLY_LEASE_SECONDS) has run out: before that, that worker may
still be sending them, and the duplicate gets `in_flight` (a webhook answers 503: again later).

Stored replies exist only until they are delivered: the statement that marks a message answered
also clears them, so the names, notes and photo paths reviewers were shown do not pile up in the
database (the row stays, so a later duplicate is still recognised and ignored). A reply carrying
a secret (an invite code) is stored as its `stored_text`, never as sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.app import App
from bot.flows import escape
from bot.flows.consent import ConsentDraft, PendingCommand
from bot.flows.context import Context, Input
from bot.flows.drafts import ProxyDraft
from bot.flows.matching import MENU_KEY, escape_word, is_keyword, match_choices
from bot.flows.router import Router
from bot.flows.states import Start
from bot.i18n import N_, get_translator
from bot.messages import COMMAND_PREFIX, Incoming, Kind, Outgoing, parse_choice_token, parse_command
from bot.storage.db import transaction
from bot.storage.deliveries import (
    SentMarks,
    foldable_answer,
    load_conversation,
    photo_wanted,
    processed_message,
    release_lease,
    save_position,
    save_position_and_record,
    take_resend_lease,
)
from bot.storage.evidence import CleanPhoto, EvidenceError
from bot.storage.models import ChannelAccount, Conversation, Person
from bot.storage.people import Role, branch_ids_in_scope, get_or_create_account
from bot.text import nfc, strip_controls

log = logging.getLogger(__name__)

Sender = Callable[[list[Outgoing]], Awaitable[None]]
INITIAL_STATE = Start.NEW
MAX_PENDING_ARGS = 200  # a command's words kept until consent (a reference, filters)
MAX_PROMPT_CHAIN = 8
MAX_TEXT = 2000
# How stale an account's last_inbound_at may be (it is written at most this often).
INBOUND_STAMP_EVERY = timedelta(minutes=5)
UNSUPPORTED_KEYS = {
    Kind.STICKER: N_("input.sticker"),
    Kind.VOICE: N_("input.voice"),
    Kind.FILE: N_("input.file"),
    Kind.UNSUPPORTED: N_("input.unsupported"),
}


def clean_incoming(msg: Incoming) -> Incoming:
    """Typed text without control characters, once, where it enters: NUL (which PostgreSQL
    refuses) and the like never reach a handler, a name, a note or the database."""
    text = strip_controls(msg.text) if msg.text else msg.text
    args = strip_controls(msg.args) if msg.args else msg.args
    command = strip_controls(msg.command) if msg.command else msg.command
    if (text, args, command) == (msg.text, msg.args, msg.command):
        return msg
    return replace(msg, text=text, args=args, command=command)


class PhotoDownloadError(Exception):
    """Raised by a channel's fetch when the platform would not give us the file."""


@dataclass
class Outcome:
    replies: list[Outgoing]
    duplicate: bool = False
    # A duplicate whose replies another worker may still be sending: nothing is sent now; a
    # webhook asks the platform to deliver it again later (then they are sent, if still due).
    in_flight: bool = False


class FlowEngine:
    def __init__(self, app: App, router: Router) -> None:
        self.app = app
        self.router = router
        self._sent = SentMarks(app.engine, app.clock)

    async def process(self, msg: Incoming, send: Sender | None = None) -> Outcome:
        """Handle one inbound message and (if given) send its replies through `send`."""
        with self._sent.handling():
            msg = clean_incoming(msg)
            photo, photo_error = await self._prefetch_photo(msg)
            outcome, processed_id = await self._run(msg, photo, photo_error)
            if send is not None and outcome.replies:
                try:
                    await send(outcome.replies)
                except Exception:
                    if processed_id is not None:
                        await release_lease(self.app.engine, processed_id)
                    raise
            if processed_id is not None:
                await self._sent.mark(processed_id)
            return outcome

    async def _prefetch_photo(self, msg: Incoming) -> tuple[CleanPhoto | None, str | None]:
        """Download and clean a photo; nothing is written to disk here."""
        if msg.kind != Kind.PHOTO or msg.photo is None:
            return None, None
        if not await self._may_take_photo(msg):
            return None, None
        limit = self.app.settings.max_photo_bytes
        if msg.photo.declared_size is not None and msg.photo.declared_size > limit:
            return None, "too_large"
        try:
            data = await msg.photo.fetch()
        except EvidenceError as exc:  # the real size was learnt only while downloading
            return None, exc.reason
        except PhotoDownloadError:
            return None, "download"
        except Exception:  # the platform or network failed; the person is asked to resend
            log.exception("photo download failed on %s", msg.channel)
            return None, "download"
        try:
            return await self.app.evidence.prepare_async(data), None
        except EvidenceError as exc:
            return None, exc.reason

    async def _may_take_photo(self, msg: Incoming) -> bool:
        """A quick look before downloading: a redelivered message, a person who has not consented
        or a question that takes no photo cost no download and no decoding. Only a shortcut: the
        transaction decides again on what it finds then (had the conversation moved on to a
        question that takes photos meanwhile, the person is asked to send the photo again)."""
        async with self.app.sessions() as session:
            row = await photo_wanted(session, msg.channel, msg.user_id, msg.message_id)
        if row is None:
            return False
        consent_at, state = row
        if consent_at is None:
            return False
        spec = self.router.states.get(state or INITIAL_STATE)
        return spec is not None and spec.accepts_photos

    async def _run(
        self, msg: Incoming, photo: CleanPhoto | None, photo_error: str | None
    ) -> tuple[Outcome, int | None]:
        for attempt in range(5):
            try:
                async with transaction(self.app.sessions) as session:
                    outcome, processed_id, ctx = await self._in_transaction(session, msg, photo, photo_error)
                await self._after_commit(ctx)
                return outcome, processed_id
            except (StaleDataError, IntegrityError):
                # Another worker changed this conversation or took this message id first.
                log.info("retrying message %s after a concurrent change (attempt %d)", msg.message_id, attempt)
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt:
                    log.exception("failed to handle a message on %s", msg.channel)
                    return Outcome([Outgoing(text=await self._error_text(msg))]), None
                # A pooled connection died (the server restarted): the pool has dropped it and
                # the message is handled again on a fresh one (storage/db.py pings idle ones only).
                log.warning("database connection lost; handling message %s again", msg.message_id)
            except Exception:
                # A bug must not strand the person: nothing of this message was committed, earlier
                # answers are intact, and they are told to try again.
                log.exception("failed to handle a message on %s", msg.channel)
                return Outcome([Outgoing(text=await self._error_text(msg))]), None
        return Outcome([Outgoing(text=await self._error_text(msg))]), None

    async def _after_commit(self, ctx: Context | None) -> None:
        for hook in ctx.after_commit if ctx is not None else ():
            try:
                await hook()
            except Exception:  # the message itself is done; a cleanup failure is only logged
                log.exception("after-commit work failed")

    async def _error_text(self, msg: Incoming) -> str:
        locale = address = None
        try:
            async with self.app.sessions() as session:
                locale, address = await self.app.address_forms.of_account(session, msg.channel, msg.user_id)
        except Exception:  # the database itself may be what failed
            log.warning("could not read the locale for an error message")
        return get_translator(locale, address)(N_("common.error"))

    async def _in_transaction(
        self, session: AsyncSession, msg: Incoming, photo: CleanPhoto | None, photo_error: str | None
    ) -> tuple[Outcome, int | None, Context | None]:
        now = self.app.clock.now()
        row = await load_conversation(session, msg.channel, msg.user_id, msg.message_id)
        seen = row[3] if row is not None else None
        if row is None and msg.message_id:
            # Nobody known writes (a first contact, or an account deleted since): the duplicate
            # check on its own.
            seen = await processed_message(session, msg.channel, msg.message_id)
        if msg.message_id:
            if seen is not None:
                if seen.replied_at is None and seen.replies:
                    # Resend the stored replies once no other worker may still be sending them.
                    if not await take_resend_lease(session, seen.id, now, self._lease(now)):
                        return Outcome([], duplicate=True, in_flight=True), None, None
                    return Outcome([Outgoing.from_json(r) for r in seen.replies], duplicate=True), seen.id, None
                return Outcome([], duplicate=True), None, None

        account, conv, person, first_contact = await self._load(session, msg, now, row)
        if (
            account.last_inbound_at is None
            or account.unreachable_at is not None
            or now - account.last_inbound_at >= INBOUND_STAMP_EVERY
        ):
            # Written at most every few minutes, not on every message: what reads it (the Zalo
            # OA 7-day window, the best channel for a reminder) needs days, not seconds.
            account.last_inbound_at = now
        if account.unreachable_at is not None:
            account.unreachable_at = None
            account.unreachable_reason = None
        # Keep the conversation out of autoflush while the handler and prompts run, so its new
        # position is written once (with its version check) instead of before every query.
        session.expunge(conv)
        ctx = Context(
            self.app,
            session,
            account,
            conv,
            msg,
            person,
            first_contact=first_contact,
            commands=self.router.command_order,
            address=await self.app.address_forms.of_branch(session, person.branch_id if person is not None else None),
        )
        await self._load_proxy(ctx)

        await self._dispatch(ctx, msg, photo, photo_error)
        await self._follow_prompts(ctx)
        if ctx.first_contact and not ctx.greeted:
            # Whatever someone writes first (a command, a code, "help"), the first thing they
            # read says that an automated assistant is answering.
            ctx.replies.insert(0, Outgoing(text=ctx.welcome_text()))
        # The handler's own changes (answers, the submission, the account) go first, then the
        # engine's two rows as single statements (storage/deliveries.py). A level step's answer
        # and score are written with them instead, without the session's unit of work.
        folded = foldable_answer(session) if msg.message_id else None
        if folded is None:
            await session.flush()
        conv.updated_at = now
        if not msg.message_id:
            await save_position(session, conv)
            return Outcome(ctx.replies), None, ctx
        # Written last, with its replies, in the same transaction as the conversation: a second
        # worker handling the same message at the same time fails on the unique key here, rolls
        # back and, on its retry, finds this row.
        processed_id = await save_position_and_record(
            session,
            conv,
            folded,
            channel=msg.channel,
            message_id=msg.message_id,
            account_id=account.id,
            received_at=now,
            replies=[r.to_stored_json() for r in ctx.replies],
            sending_until=self._lease(now) if ctx.replies else None,
        )
        return Outcome(ctx.replies), processed_id, ctx

    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.app.settings.reply_lease_seconds)

    async def _load_proxy(self, ctx: Context) -> None:
        """Resume acting for someone only while the leader still covers that person's branch."""
        if not ctx.proxy:
            return
        target_id = ctx.draft(ProxyDraft).subject
        allowed = False
        if ctx.person is not None:
            scope = await branch_ids_in_scope(ctx.session, ctx.person.id, Role.LEADER)
            if target_id:
                subject = await ctx.session.get(Person, target_id)
                if subject is not None and subject.deleted_at is None and (scope is None or subject.branch_id in scope):
                    ctx.proxy_subject = subject
                    allowed = True
            else:
                allowed = scope is None or bool(scope)
        if not allowed:
            ctx.stop_acting()
            ctx.say(ctx.t("proxy.no_longer"))
            ctx.goto(Start.MENU if ctx.account.consent_at else INITIAL_STATE)

    async def _load(
        self, session: AsyncSession, msg: Incoming, now: datetime, row: Row | None
    ) -> tuple[ChannelAccount, Conversation, Person | None, bool]:
        """The account, its conversation and its person from `load_conversation` (created on first
        contact); and whether this is the first contact (no conversation with this account yet)."""
        if row is None:
            account = await get_or_create_account(session, msg.channel, msg.user_id, msg.chat_id, now)
            conv, person = None, None
        else:
            account, conv, person = row[0], row[1], row[2]
            if msg.chat_id and account.chat_id != msg.chat_id:
                account.chat_id = msg.chat_id
        first_contact = conv is None
        if conv is None:
            conv = Conversation(account_id=account.id, state=INITIAL_STATE, data={}, prompt_seq=0, updated_at=now)
            session.add(conv)
            await session.flush()
        return account, conv, person, first_contact

    async def _dispatch(self, ctx: Context, msg: Incoming, photo: CleanPhoto | None, photo_error: str | None) -> None:
        t = ctx.t
        if msg.kind == Kind.FOLLOW:
            await self._command(ctx, "start", "")
            return
        if msg.kind == Kind.COMMAND and msg.command:
            await self._command(ctx, msg.command.lower(), msg.args)
            return
        if msg.kind == Kind.TEXT and msg.text:
            parsed = parse_command(msg.text) or self.router.bare_command(nfc(msg.text))
            if parsed:
                await self._command(ctx, *parsed)
                return
        if msg.kind in (Kind.STICKER, Kind.VOICE, Kind.FILE, Kind.UNSUPPORTED):
            ctx.retry(UNSUPPORTED_KEYS[msg.kind])
            return

        spec = self.router.states.get(ctx.state)
        if spec is None or spec.handle is None:
            # A state from an older version, or a prompt-only state: start that part again.
            log.warning("conversation %s in unknown state %r", ctx.account.id, ctx.state)
            ctx.goto(Start.MENU if ctx.account.consent_at else INITIAL_STATE)
            return
        if not spec.before_consent and ctx.account.consent_at is None:
            # Consent was withdrawn (perhaps on another channel) while this question was open:
            # nothing more is taken until they agree again.
            ctx.say(ctx.t("consent.needed_first"))
            ctx.goto(Start.CONSENT)
            return

        inp = self._resolve(ctx, msg, photo, photo_error)
        if inp is None:
            return
        if inp.kind in (Kind.COMMAND, Kind.CHOICE) and inp.choice and inp.choice.startswith(COMMAND_PREFIX):
            # A button on a notice (reminder, digest) that runs a command whatever the state, or a
            # menu entry that opens one (pressed, or typed as its number or label).
            await self._command(ctx, inp.choice[len(COMMAND_PREFIX) :], "")
            return
        if inp.kind == Kind.TEXT and inp.text:
            # Back, cancel and help mean the same at every question, and are never an answer.
            word = escape_word(inp.text)
            if word is not None and await escape.handle(ctx, word):
                return
            if is_keyword(inp.text, MENU_KEY) and ctx.account.consent_at:
                ctx.goto(Start.MENU)
                return
            candidates = match_choices(inp.text, ctx.current_choices())
            if len(candidates) == 1 and candidates[0].value.startswith(COMMAND_PREFIX):
                await self._command(ctx, candidates[0].value[len(COMMAND_PREFIX) :], "")
                return
            if len(candidates) == 1:
                inp = Input(Kind.CHOICE, choice=candidates[0].value, text=inp.text)
            elif len(candidates) > 1:
                escape.ask_which(ctx, candidates)
                return
        if inp.kind == Kind.PHOTO and not spec.accepts_photos:
            ctx.retry("input.photo_not_expected")
            return
        if inp.kind == Kind.PHOTO and ctx.account.consent_at is None:
            # A question that takes photos, but consent was withdrawn since: keep nothing.
            ctx.say(t("consent.needed_first"))
            ctx.goto(Start.CONSENT)
            return
        await spec.handle(ctx, inp)

    def _resolve(self, ctx: Context, msg: Incoming, photo: CleanPhoto | None, photo_error: str | None) -> Input | None:
        choices = ctx.current_choices()
        if msg.kind == Kind.CHOICE and msg.choice is not None:
            seq, value = parse_choice_token(msg.choice)
            if value.startswith(COMMAND_PREFIX):
                return Input(Kind.COMMAND, choice=value)
            # A button of an earlier question is stale even when the current question offers the
            # same value (every item of a declaration has the same levels).
            if (seq is None or seq == ctx.conv.prompt_seq) and any(c.value == value for c in choices):
                return Input(Kind.CHOICE, choice=value)
            ctx.retry("input.stale_button")
            return None
        if msg.kind == Kind.PHOTO:
            return Input(Kind.PHOTO, photo=photo, photo_error=photo_error or (None if photo else "download"))
        text = nfc(msg.text or "")
        if not text:
            ctx.retry("input.empty")
            return None
        if len(text) > MAX_TEXT:
            ctx.retry("input.too_long")
            return None
        strict = match_choices(text, choices, partial=False)
        if strict:
            return Input(Kind.CHOICE, choice=strict[0].value, text=text)
        return Input(Kind.TEXT, text=text)

    async def _command(self, ctx: Context, name: str, args: str) -> None:
        spec = self.router.commands.get(name)
        if spec is None:
            ctx.say(ctx.t("input.unknown_command", command=name[:32]))
            await self.router.commands["huongdan"].handler(ctx, "")
            return
        if spec.needs_consent and ctx.account.consent_at is None:
            if spec.roles:
                # A newly granted leader's or officer's first command (/duyet): carried out
                # right after they agree (see start.on_consent), not lost.
                pending = PendingCommand(name, args[:MAX_PENDING_ARGS])
                ctx.keep(replace(ctx.draft(ConsentDraft), pending=pending))
            ctx.say(ctx.t("consent.needed_first"))
            ctx.goto(Start.CONSENT)
            return
        await spec.handler(ctx, args)

    async def _follow_prompts(self, ctx: Context) -> None:
        for _ in range(MAX_PROMPT_CHAIN):
            target = ctx.next_state
            if target is None:
                return
            ctx.next_state = None
            ctx.conv.state = target
            spec = self.router.states.get(target)
            if spec is None or spec.prompt is None:
                raise RuntimeError(f"state {target!r} has no prompt")
            await spec.prompt(ctx)
            if ctx.next_state is None:
                escape.remember(ctx)  # where "quay lại" leads back to
        raise RuntimeError("prompts kept redirecting; check the state graph")
