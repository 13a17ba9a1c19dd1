"""SQLAlchemy models: the whole persisted state of the bot.

Conversation position, answers, photos, lifecycle events and the reminder outbox all live here,
so that a restart (or another worker) continues exactly where a person was.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import (
    false as sa_false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.storage.types import UTCDateTime

# BigInteger primary keys autoincrement on SQLite only as INTEGER; this variant keeps both right.
IdType = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class OrgUnit(Base):
    """Province → commune (xã, phường, đặc khu) → branch (thôn, buôn, tổ dân phố).

    Two-level local government since 1 July 2025: there is no district level."""

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # province | commune | branch
    name: Mapped[str] = mapped_column(String(200))
    # The state's code of the unit (a commune's 5 digits from QĐ 19/2025/QĐ-TTg), for reports.
    official_code: Mapped[str | None] = mapped_column(String(8))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    households_total: Mapped[int | None] = mapped_column(Integer)
    adults_total: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    # A commune's learning association, named in the consent text as who controls the data.
    association_name: Mapped[str | None] = mapped_column(String(200))
    association_contact: Mapped[str | None] = mapped_column(String(200))
    # A commune's season rules: after a deadline, "late" (accepted, marked late for reviewers) or
    # "closed" (refused, pointing to the next campaign); None reads as "late". How residents are
    # addressed: "neutral" (catalog default), "bac" or "ong_ba"; None reads as "neutral".
    after_deadline: Mapped[str | None] = mapped_column(String(8))
    address_form: Mapped[str | None] = mapped_column(String(16))

    parent: Mapped[OrgUnit | None] = relationship(remote_side="OrgUnit.id")


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    locale: Mapped[str] = mapped_column(String(5), default="vi")
    consent_at: Mapped[datetime | None]
    created_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]

    branch: Mapped[OrgUnit | None] = relationship(foreign_keys=[branch_id])


class Household(Base):
    __tablename__ = "households"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    head_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    registered_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    created_at: Mapped[datetime]

    members: Mapped[list[HouseholdMember]] = relationship(
        back_populates="household", order_by="HouseholdMember.position", cascade="all, delete-orphan"
    )
    head: Mapped[Person | None] = relationship(foreign_keys=[head_person_id])


class HouseholdMember(Base):
    """Everyone in the household, the head included (relation 'head')."""

    __tablename__ = "household_members"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    full_name: Mapped[str] = mapped_column(String(200))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    relation: Mapped[str] = mapped_column(String(16))  # head | spouse | child | parent | other
    position: Mapped[int] = mapped_column(Integer, default=0)

    household: Mapped[Household] = relationship(back_populates="members")


class ChannelAccount(Base):
    """One identity on one platform (Telegram user, Zalo user, terminal user)."""

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_channel_accounts_channel_external"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    locale: Mapped[str | None] = mapped_column(String(5))
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    unreachable_at: Mapped[datetime | None]
    unreachable_reason: Mapped[str | None] = mapped_column(String(64))

    person: Mapped[Person | None] = relationship()


class Conversation(Base):
    """Where a person is in the chat, committed before every reply is sent."""

    __tablename__ = "conversations"

    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt_seq: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime]

    __mapper_args__ = {"version_id_col": version}


class RoleGrant(Base):
    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # resident | leader | officer | admin
    scope_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    granted_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))

    scope_unit: Mapped[OrgUnit | None] = relationship(foreign_keys=[scope_unit_id])


class InviteCode(Base):
    """A one-time code an officer hands out to give someone a role within a scope."""

    __tablename__ = "invite_codes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # sha256 of the normalised code: a leaked database does not leak usable codes.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    scope_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"))
    created_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    redeemed_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    redeemed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    scope_unit: Mapped[OrgUnit | None] = relationship(foreign_keys=[scope_unit_id])


class Campaign(Base):
    """One commune's yearly cycle: its deadlines and targets."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("commune_id", "year", name="uq_campaigns_commune_year"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    commune_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)  # title -> percent
    reminder_offsets: Mapped[list[Any]] = mapped_column(default=list)  # days before a deadline
    created_at: Mapped[datetime]
    # First day residents can register for this campaign (None: the day after the previous
    # campaign's last deadline, or 1 January of its year for the first one).
    opens_on: Mapped[date | None] = mapped_column(Date)

    commune: Mapped[OrgUnit] = relationship()
    deadlines: Mapped[list[CampaignDeadline]] = relationship(
        back_populates="campaign", order_by="CampaignDeadline.due_on", cascade="all, delete-orphan"
    )


class CampaignDeadline(Base):
    __tablename__ = "campaign_deadlines"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", name="uq_campaign_deadlines_campaign_kind"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # registration | self_declaration | branch_review | commune_report
    due_on: Mapped[date] = mapped_column(Date)
    reminder_offsets: Mapped[list[Any] | None] = mapped_column(JSON)  # overrides the campaign's

    campaign: Mapped[Campaign] = relationship(back_populates="deadlines")


class Consent(Base):
    """One consent given, confirmed or withdrawn: who, through which account, when, to which text.

    Rows are only ever added. Consent is given before registration creates the person, so a row
    names the channel account first and gets its person when that row exists. The text itself
    lives in the catalogs: `text_version` names it and `text_sha256` fingerprints the exact words
    shown (in `locale`, with `controller` filled in), so a later change of wording is visible.
    """

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # given | withdrawn | guardian
    method: Mapped[str] = mapped_column(String(16))  # chat | proxy | deletion
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("channel_accounts.id", ondelete="SET NULL"), index=True)
    # A branch leader who confirmed the consent of someone without a phone (method "proxy").
    recorded_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    # Guardian confirmations: the household whose child under 16 was recorded.
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id", ondelete="SET NULL"))
    text_version: Mapped[str | None] = mapped_column(String(16))
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(5))
    controller: Mapped[str | None] = mapped_column(String(400))
    purposes: Mapped[list[Any]] = mapped_column(default=list)
    at: Mapped[datetime]


class InviteFailure(Base):
    """A wrong invite code typed, kept a day: the daily limit holds across /start and restarts."""

    __tablename__ = "invite_failures"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    at: Mapped[datetime]


class CriteriaSetRecord(Base):
    """A snapshot of the criteria file a submission was scored against."""

    __tablename__ = "criteria_sets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    loaded_at: Mapped[datetime]


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "title", "subject_key", name="uq_submissions_campaign_title_subject"),
        Index("ix_submissions_branch_state", "branch_id", "state"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(32), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    title: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str] = mapped_column(String(16))  # person | household
    subject_key: Mapped[str] = mapped_column(String(32))  # "p:<id>" or "h:<id>"
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    criteria_set_id: Mapped[str] = mapped_column(ForeignKey("criteria_sets.id"))
    state: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer, default=0)
    recognisable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    # Set when the person asked for their data to be deleted: the row stays, without anyone
    # attached to it, so the year's registered/recognised counts still add up.
    anonymised_at: Mapped[datetime | None]
    # Registered or submitted after its deadline under the commune's "late" policy: reviewers see it.
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    campaign: Mapped[Campaign] = relationship()
    person: Mapped[Person | None] = relationship(foreign_keys=[person_id])
    household: Mapped[Household | None] = relationship()
    branch: Mapped[OrgUnit] = relationship()
    answers: Mapped[list[Answer]] = relationship(back_populates="submission", cascade="all, delete-orphan")
    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="submission", order_by="Evidence.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[SubmissionEvent]] = relationship(back_populates="submission", order_by="SubmissionEvent.id")


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("submission_id", "item_id", name="uq_answers_submission_item"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    answered_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    answered_at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="answers")


class Evidence(Base):
    """One photo attached to one item; the file itself is stored once per sha256."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("submission_id", "item_id", "sha256", name="uq_evidence_submission_item_sha"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # Perceptual hash of the stored photo (bot.images.dhash): near-duplicates used twice.
    dhash: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    source_channel: Mapped[str | None] = mapped_column(String(16))
    source_message_id: Mapped[str | None] = mapped_column(String(128))
    uploaded_by_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="evidence")


class SubmissionEvent(Base):
    """Append-only audit of every lifecycle move (and of photos removed under the retention
    rule: actor_kind 'retention', the state unchanged, see bot/review/retention.py)."""

    __tablename__ = "submission_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    note: Mapped[str | None] = mapped_column(Text)
    # Why a commune officer decided before the branch had reviewed (the commune's rule overridden).
    override_reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    submission: Mapped[Submission] = relationship(back_populates="events")


class OutboxMessage(Base):
    """A message to send later (reminders, digests, notices); the unique key makes it exactly once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_not_before", "status", "not_before"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("channel_accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    deadline_kind: Mapped[str | None] = mapped_column(String(32))
    offset_days: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    not_before: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class ProcessedMessage(Base):
    """Inbound platform message ids already handled, with the replies they produced.

    Lets a redelivered update be ignored, or, if the process died after committing but before
    replying, lets the stored replies be sent instead of being recomputed. The replies are kept
    only until they are delivered (then `replies` is cleared with `replied_at` set).
    """

    __tablename__ = "processed_messages"
    __table_args__ = (UniqueConstraint("channel", "message_id", name="uq_processed_messages_channel_msg"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("channel_accounts.id", ondelete="CASCADE"))
    received_at: Mapped[datetime]
    replies: Mapped[list[Any] | None] = mapped_column(JSON)
    replied_at: Mapped[datetime | None]
    # Until then the worker that stored the replies may still be sending them: a duplicate
    # delivery meanwhile does not send them again. Cleared when that send fails.
    sending_until: Mapped[datetime | None]


class ZaloOAToken(Base):
    """OAuth tokens of a Zalo Official Account (one row per app id).

    The refresh token is single-use: a new pair is committed here before it is used, and
    `refresh_started_at` stays set if a refresh never finished (the pair Zalo issued may be lost).
    """

    __tablename__ = "zalo_oa_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None]
    refresh_expires_at: Mapped[datetime | None]
    generation: Mapped[int] = mapped_column(Integer, default=0)
    seed_digest: Mapped[str | None] = mapped_column(String(64))
    refresh_started_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]
    needs_reauth_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class OperatorAlert(Base):
    """Something an operator must look at (webhook signatures failing, the OA needing
    re-authorisation): counted, with its first and last time; no personal data."""

    __tablename__ = "operator_alerts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(Text)


class WebLink(Base):
    """A one-time sign-in link to the review desk, sent in chat to one person. Only the token's
    sha256 is kept; it opens one session, once, within its ten minutes."""

    __tablename__ = "web_links"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in review-desk browser: the cookie's sha256, its CSRF secret, eight hours at most,
    ended early by signing out (here or everywhere, from chat)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
