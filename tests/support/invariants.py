"""What must hold in the database whatever happened before: crashes, redeliveries, two workers,
platform failures, garbage input. Reliability tests call `check_invariants(app)` at the end (and
often in between); it raises AssertionError listing every broken rule.

    summary = await check_invariants(app)           # App: sessions, catalog, evidence folder
    summary = await check_invariants(app, router)   # states of another router count as valid

Rules:
* every submission is in a lifecycle state, its events form one chain from "registered" (no
  from-state) through allowed transitions, and the last event's state is the submission's state
  (a photo removal under the retention rule is recorded in the chain without a move);
* reference codes are set and unique; (campaign, title, subject) is unique;
* answers and evidence belong to existing submissions and to items of that submission's criteria
  set; an answer's level is one the item accepts and its points are that level's points; the
  stored score is the score of the stored answers; one answer per item;
* every evidence file exists under the evidence folder with the recorded sha256 and size, and a
  photo is attached to an item at most once;
* processed inbound ids are unique per channel and belong to existing accounts; delivered
  replies hold no sending lease and are no longer stored;
* outbox keys are unique, every row is in a known status, a row is 'sent' iff it has sent_at, a
  sent row is never claimable again (not pending/claimed) and nothing is in flight unless asked;
  a settled row keeps no payload;
* every conversation belongs to an existing account and is at a state the router knows;
* channel accounts are unique per (channel, external id).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from bot.app import App
from bot.domain import lifecycle
from bot.domain.criteria import Level, points_for, score
from bot.domain.lifecycle import State
from bot.flows.router import Router
from bot.reminders.dispatch import SETTLED
from bot.review.retention import DECIDED as RETAINED_STATES
from bot.review.retention import RETENTION_ACTOR
from bot.storage.models import (
    Answer,
    ChannelAccount,
    Conversation,
    Evidence,
    OutboxMessage,
    ProcessedMessage,
    Submission,
    SubmissionEvent,
)

OUTBOX_STATUSES = {"pending", "claimed", "sending", "sent", "failed", "unreachable", "unconfirmed", "expired"}
ALLOWED_MOVES = {(t.source.value, t.target.value) for t in lifecycle.TRANSITIONS}


@dataclass
class Summary:
    """Counts a test can assert on after the rules passed."""

    submissions: Counter = field(default_factory=Counter)  # state → count
    answers: int = 0
    evidence: int = 0
    processed: int = 0
    outbox: Counter = field(default_factory=Counter)  # status → count
    conversations: Counter = field(default_factory=Counter)  # state → count
    accounts: int = 0


async def check_invariants(
    app: App,
    router: Router | None = None,
    *,
    in_flight_ok: bool = False,
    evidence_dir: Path | None = None,
) -> Summary:
    """Check every rule above; `in_flight_ok` allows outbox rows still 'claimed' or 'sending'
    (a dispatcher is running, or one just died and its lease has not run out)."""
    if router is None:
        from bot.flows.registry import build_router

        router = build_router()
    folder = Path(evidence_dir or app.settings.evidence_dir)
    problems: list[str] = []
    summary = Summary()
    async with app.sessions() as session:
        accounts = list(await session.scalars(select(ChannelAccount)))
        submissions = list(await session.scalars(select(Submission).order_by(Submission.id)))
        events = list(await session.scalars(select(SubmissionEvent).order_by(SubmissionEvent.id)))
        answers = list(await session.scalars(select(Answer).order_by(Answer.id)))
        evidence = list(await session.scalars(select(Evidence).order_by(Evidence.id)))
        processed = list(await session.scalars(select(ProcessedMessage)))
        outbox = list(await session.scalars(select(OutboxMessage)))
        conversations = list(await session.scalars(select(Conversation)))

    account_ids = {a.id for a in accounts}
    summary.accounts = len(accounts)
    for key, n in Counter((a.channel, a.external_id) for a in accounts).items():
        if n > 1:
            problems.append(f"channel account {key} exists {n} times")

    by_id = {s.id: s for s in submissions}
    for key, n in Counter(s.reference for s in submissions).items():
        if key is None:
            problems.append(f"{n} submission(s) without a reference code")
        elif n > 1:
            problems.append(f"reference {key} used {n} times")
    for key, n in Counter((s.campaign_id, s.title, s.subject_key) for s in submissions).items():
        if n > 1:
            problems.append(f"{n} submissions for campaign/title/subject {key}")

    chains: dict[int, list[SubmissionEvent]] = {}
    for event in events:
        if event.submission_id not in by_id:
            problems.append(f"event {event.id} of a missing submission {event.submission_id}")
            continue
        if event.actor_kind == RETENTION_ACTOR:
            if event.from_state != event.to_state or event.to_state not in RETAINED_STATES:
                problems.append(f"retention event {event.id} moves {event.from_state}→{event.to_state}")
            continue
        chains.setdefault(event.submission_id, []).append(event)
    answers_of: dict[int, list[Answer]] = {}
    for answer in answers:
        answers_of.setdefault(answer.submission_id, []).append(answer)

    for sub in submissions:
        summary.submissions[sub.state] += 1
        where = f"submission {sub.id} ({sub.reference})"
        if sub.state not in {s.value for s in State}:
            problems.append(f"{where}: unknown state {sub.state!r}")
        chain = chains.get(sub.id, [])
        if not chain:
            problems.append(f"{where}: no lifecycle events")
        else:
            first = chain[0]
            if first.from_state is not None or first.to_state != State.REGISTERED.value:
                problems.append(f"{where}: first event {first.from_state}→{first.to_state}")
            for before, after in zip(chain, chain[1:], strict=False):
                if after.from_state != before.to_state:
                    problems.append(
                        f"{where}: event {after.id} leaves {after.from_state}, previous ended at {before.to_state}"
                    )
                if (after.from_state, after.to_state) not in ALLOWED_MOVES:
                    problems.append(
                        f"{where}: event {after.id} {after.from_state}→{after.to_state} is not in the table"
                    )
            if chain[-1].to_state != sub.state:
                problems.append(f"{where}: events end at {chain[-1].to_state}, the row says {sub.state}")
        try:
            criteria_set = app.catalog.get(sub.criteria_set_id)
        except KeyError:
            problems.append(f"{where}: unknown criteria set {sub.criteria_set_id}")
            continue
        items = {item.id: item for item in criteria_set.items}
        mine = answers_of.get(sub.id, [])
        for item_id, n in Counter(a.item_id for a in mine).items():
            if n > 1:
                problems.append(f"{where}: item {item_id} answered {n} times")
        levels: dict[str, str] = {}
        for answer in mine:
            item = items.get(answer.item_id)
            if item is None:
                problems.append(f"{where}: answer {answer.id} to {answer.item_id}, not an item of {criteria_set.id}")
                continue
            try:
                expected = points_for(item, Level(answer.level))
            except ValueError:
                problems.append(f"{where}: answer {answer.id} level {answer.level!r} not accepted by {item.id}")
                continue
            if answer.points != expected:
                problems.append(
                    f"{where}: answer {answer.id} has {answer.points} points, {answer.level} gives {expected}"
                )
            levels[answer.item_id] = answer.level
        if sub.anonymised_at is None and levels:
            computed = score(criteria_set, levels)
            if (sub.score, sub.recognisable) != (computed.total, computed.recognisable):
                problems.append(
                    f"{where}: stored score {sub.score}/{sub.recognisable}, answers give {computed.total}/{computed.recognisable}"
                )
    summary.answers = len(answers)
    for answer in answers:
        if answer.submission_id not in by_id:
            problems.append(f"answer {answer.id} of a missing submission {answer.submission_id}")

    summary.evidence = len(evidence)
    for key, n in Counter((e.submission_id, e.item_id, e.sha256) for e in evidence).items():
        if n > 1:
            problems.append(f"photo {key[2][:12]} attached {n} times to submission {key[0]} item {key[1]}")
    digests: dict[Path, str] = {}
    for photo in evidence:
        where = f"evidence {photo.id}"
        sub = by_id.get(photo.submission_id)
        if sub is None:
            problems.append(f"{where}: missing submission {photo.submission_id}")
        else:
            try:
                if photo.item_id not in {i.id for i in app.catalog.get(sub.criteria_set_id).items}:
                    problems.append(f"{where}: item {photo.item_id} is not in {sub.criteria_set_id}")
            except KeyError:
                pass
        path = folder / photo.path
        if not path.is_file():
            problems.append(f"{where}: file {photo.path} is missing")
            continue
        if path not in digests:
            digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        if digests[path] != photo.sha256:
            problems.append(f"{where}: file {photo.path} has sha256 {digests[path][:12]}, recorded {photo.sha256[:12]}")
        if path.stat().st_size != photo.size:
            problems.append(f"{where}: file is {path.stat().st_size} bytes, recorded {photo.size}")

    summary.processed = len(processed)
    for key, n in Counter((p.channel, p.message_id) for p in processed).items():
        if n > 1:
            problems.append(f"inbound message {key} processed {n} times")
    for row in processed:
        if row.account_id is not None and row.account_id not in account_ids:
            problems.append(f"processed message {row.id} of a missing account {row.account_id}")
        if row.replied_at is not None and row.sending_until is not None:
            problems.append(f"processed message {row.id} delivered and still leased for sending")
        if row.replied_at is not None and row.replies is not None:
            problems.append(f"processed message {row.id} delivered and its replies still stored")

    for key, n in Counter(r.dedupe_key for r in outbox).items():
        if n > 1:
            problems.append(f"outbox key {key} used {n} times")
    for row in outbox:
        summary.outbox[row.status] += 1
        where = f"outbox {row.id} ({row.dedupe_key})"
        if row.status not in OUTBOX_STATUSES:
            problems.append(f"{where}: unknown status {row.status!r}")
        if (row.status == "sent") != (row.sent_at is not None):
            problems.append(f"{where}: status {row.status} with sent_at {row.sent_at}")
        if row.status in ("claimed", "sending") and not row.claimed_by:
            problems.append(f"{where}: {row.status} without a claimant")
        if row.status in ("claimed", "sending") and not in_flight_ok:
            problems.append(f"{where}: still {row.status}")
        if row.account_id not in account_ids:
            problems.append(f"{where}: missing account {row.account_id}")
        if row.status in SETTLED and row.payload:
            problems.append(f"{where}: {row.status} and its payload still stored")

    for conv in conversations:
        summary.conversations[conv.state] += 1
        if conv.account_id not in account_ids:
            problems.append(f"conversation of a missing account {conv.account_id}")
        if conv.state not in router.states:
            problems.append(f"conversation {conv.account_id} at unknown state {conv.state!r}")
        if conv.prompt_seq is None or conv.prompt_seq < 0:
            problems.append(f"conversation {conv.account_id} with prompt_seq {conv.prompt_seq}")

    assert not problems, "database inconsistent:\n  " + "\n  ".join(problems)
    return summary
