"""Settings read from environment variables and `.env` (prefix-free names, as operators write them)."""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.storage.secretbox import SecretBox


class ConfigError(RuntimeError):
    """Settings that cannot work, or would be unsafe, as given (the message names the setting)."""


MIN_SIGNING_SECRET = 16
PLACEHOLDER_SECRET = "change-me-in-production"
# Where Zalo serves the photos people send (its CDNs); "*.x" means any name under x.
DEFAULT_ZALO_MEDIA_HOSTS = "*.zdn.vn,*.zadn.vn,*.zalo.me,*.zaloapp.com,*.zaloplatforms.com"
HOST_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class ChannelLimit(BaseModel):
    """How fast the dispatcher may send on one channel."""

    model_config = ConfigDict(extra="forbid")
    rate: float = Field(gt=0, le=1000)  # messages per second, all chats together
    chat_spacing: float = Field(default=1.0, ge=0, le=3600)  # seconds between two messages to one chat


# Platform facts (DESIGN.md §5): Telegram ≈30 msg/s overall and ≈1 msg/s per chat; Zalo publishes
# no figure, so it is paced conservatively. "*" applies to any other channel.
DEFAULT_CHANNEL_LIMITS: dict[str, ChannelLimit] = {
    "telegram": ChannelLimit(rate=25, chat_spacing=1.0),
    "zalo_bot": ChannelLimit(rate=5, chat_spacing=1.0),
    "zalo_oa": ChannelLimit(rate=5, chat_spacing=1.0),
    "*": ChannelLimit(rate=5, chat_spacing=1.0),
}


class Settings(BaseSettings):
    """Everything an installation can change without touching code.

    Defaults run a self-contained bot: SQLite file, local evidence folder, terminal chat.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    database_url: str = Field(default="sqlite+aiosqlite:///./hoctap.db", alias="DATABASE_URL")
    evidence_dir: Path = Field(default=Path("./evidence"), alias="EVIDENCE_DIR")
    # A folder of the province's own criteria files (README "Province criteria"); they are loaded
    # next to the national ones and win over them for the province's communes.
    criteria_dir: Path | None = Field(default=None, alias="CRITERIA_DIR")
    timezone: str = Field(default="Asia/Ho_Chi_Minh", alias="TIMEZONE")
    default_locale: str = Field(default="vi", alias="DEFAULT_LOCALE")
    max_photo_bytes: int = Field(default=10 * 1024 * 1024, alias="MAX_PHOTO_BYTES")
    max_photos_per_item: int = Field(default=3, alias="MAX_PHOTOS_PER_ITEM")
    db_echo: bool = Field(default=False, alias="DB_ECHO")
    # Connections the process keeps open. At least as many as the messages it handles at once
    # (Telegram's concurrent updates, the Zalo channels', the reminder service): a connection
    # beyond the pool is opened for one transaction and closed after it, which costs a new
    # PostgreSQL backend (or SQLite thread) each time.
    db_pool_size: int = Field(default=16, ge=1, le=200, alias="DB_POOL_SIZE")
    db_max_overflow: int = Field(default=16, ge=0, le=200, alias="DB_MAX_OVERFLOW")
    # The data controller the consent text names when several communes are installed and the
    # person's commune is not known yet (the installation's operator, with a contact).
    privacy_controller: str | None = Field(default=None, max_length=300, alias="PRIVACY_CONTROLLER")

    # Channels: every token is optional; with none set, `hoctap run` opens the terminal chat.
    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str | None = Field(default=None, alias="TELEGRAM_API_BASE_URL")
    telegram_api_file_url: str | None = Field(default=None, alias="TELEGRAM_API_FILE_URL")
    telegram_webhook_secret: str | None = Field(default=None, alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_poll_timeout: float = Field(default=30, ge=0, le=50, alias="TELEGRAM_POLL_TIMEOUT")
    telegram_read_timeout: float = Field(default=10, gt=0, alias="TELEGRAM_READ_TIMEOUT")
    # Telegram's limits: ≈30 messages/s for the bot, ≈1/s per chat (a short burst is tolerated).
    telegram_rate_per_second: float = Field(default=30, ge=0, alias="TELEGRAM_RATE_PER_SECOND")
    telegram_chat_rate_per_second: float = Field(default=1, ge=0, alias="TELEGRAM_CHAT_RATE_PER_SECOND")
    telegram_chat_burst: int = Field(default=3, ge=1, alias="TELEGRAM_CHAT_BURST")
    telegram_send_retries: int = Field(default=3, ge=0, alias="TELEGRAM_SEND_RETRIES")
    telegram_retry_after_max: float = Field(default=30, ge=0, alias="TELEGRAM_RETRY_AFTER_MAX")
    telegram_concurrent_updates: int = Field(default=8, ge=1, alias="TELEGRAM_CONCURRENT_UPDATES")

    zalo_bot_token: str | None = Field(default=None, alias="ZALO_BOT_TOKEN")
    zalo_bot_api_base_url: str = Field(default="https://bot-api.zaloplatforms.com", alias="ZALO_BOT_API_BASE_URL")
    zalo_bot_webhook_secret: str | None = Field(default=None, alias="ZALO_BOT_WEBHOOK_SECRET")
    zalo_bot_webhook_path: str = Field(default="/zalo/bot/webhook", alias="ZALO_BOT_WEBHOOK_PATH")
    zalo_bot_poll_timeout: int = Field(default=30, ge=1, le=120, alias="ZALO_BOT_POLL_TIMEOUT")
    # Seconds between two messages to the same chat (the platform's limits are undocumented).
    zalo_bot_chat_interval: float = Field(default=1.0, ge=0, alias="ZALO_BOT_CHAT_INTERVAL")

    zalo_oa_app_id: str | None = Field(default=None, alias="ZALO_OA_APP_ID")
    zalo_oa_secret_key: str | None = Field(default=None, alias="ZALO_OA_SECRET_KEY")
    zalo_oa_app_secret: str | None = Field(default=None, alias="ZALO_OA_APP_SECRET")
    zalo_oa_refresh_token: str | None = Field(default=None, alias="ZALO_OA_REFRESH_TOKEN")
    zalo_oa_access_token: str | None = Field(default=None, alias="ZALO_OA_ACCESS_TOKEN")
    zalo_oa_api_base_url: str = Field(default="https://openapi.zalo.me", alias="ZALO_OA_API_BASE_URL")
    zalo_oa_oauth_base_url: str = Field(default="https://oauth.zaloapp.com", alias="ZALO_OA_OAUTH_BASE_URL")
    zalo_oa_webhook_path: str = Field(default="/zalo/oa/webhook", alias="ZALO_OA_WEBHOOK_PATH")
    # Consultation messages are free within 48 hours of the person's last interaction with the OA;
    # from 48 hours to 7 days they are billed and need a Zalo Cloud Account linked to the OA; after
    # 7 days Zalo refuses them (-230). Off: reminders use only the free 48 hours.
    zalo_oa_paid_window: bool = Field(default=False, alias="ZALO_OA_PAID_WINDOW")
    # The paid window's length (Zalo's limit is 7 days).
    zalo_oa_window_days: int = Field(default=7, ge=1, le=7, alias="ZALO_OA_WINDOW_DAYS")
    # Ask Zalo (POST /v3.0/oa/quota/message) before each reminder whether the person can still get one.
    zalo_oa_quota_check: bool = Field(default=False, alias="ZALO_OA_QUOTA_CHECK")
    # Show choices as quick-reply buttons under the numbered text.
    zalo_oa_buttons: bool = Field(default=True, alias="ZALO_OA_BUTTONS")

    # ZNS (Zalo Notification Service): approved template messages for reminders to people the OA
    # can no longer write to. JSON by commune code ("*" for any commune):
    # {"*": {"template_id": "123456", "params": {"<template parameter>": "<our value>"}}}, our
    # values being name, reference, due_date, days_left, year. Needs the OA (its access token).
    zalo_zns_templates: dict[str, dict[str, Any]] = Field(default_factory=dict, alias="ZALO_ZNS_TEMPLATES")
    # "development" sends only to the OA's admins and test numbers (Zalo's test mode).
    zalo_zns_mode: str = Field(default="production", alias="ZALO_ZNS_MODE")
    # Also send by Zalo user id (to OA followers; cheaper, for templates that allow it).
    zalo_zns_by_uid: bool = Field(default=False, alias="ZALO_ZNS_BY_UID")
    # What one ZNS message costs (VND), for the month's spend in the officer's digest.
    zalo_zns_cost_vnd: int = Field(default=0, ge=0, alias="ZALO_ZNS_COST_VND")
    zalo_zns_api_base_url: str = Field(default="https://business.openapi.zalo.me", alias="ZALO_ZNS_API_BASE_URL")
    # Ask people for a phone number for ZNS reminders (optional for them, with its own consent).
    zalo_zns_ask_phone: bool = Field(default=False, alias="ZALO_ZNS_ASK_PHONE")
    # Refresh the OA access token this many minutes before it expires.
    zalo_oa_refresh_margin_minutes: int = Field(default=60, ge=1, alias="ZALO_OA_REFRESH_MARGIN_MINUTES")
    # A signed OA event whose timestamp is further than this from now (either way) is a replay.
    zalo_oa_max_event_age_seconds: int = Field(default=300, ge=10, le=86400, alias="ZALO_OA_MAX_EVENT_AGE_SECONDS")
    # Encrypts the OA tokens kept in the database (Fernet key; several, comma-separated, to rotate).
    token_encryption_key: str | None = Field(default=None, alias="TOKEN_ENCRYPTION_KEY")
    # Photos people send on Zalo are downloaded only from these hosts (comma-separated).
    zalo_media_hosts: str = Field(default=DEFAULT_ZALO_MEDIA_HOSTS, alias="ZALO_MEDIA_HOSTS")

    # HTTP to Zalo: per-request timeout; timeouts and 5xx are retried with exponential backoff.
    zalo_http_timeout: float = Field(default=15.0, gt=0, alias="ZALO_HTTP_TIMEOUT")
    zalo_http_attempts: int = Field(default=3, ge=1, le=10, alias="ZALO_HTTP_ATTEMPTS")
    zalo_http_backoff: float = Field(default=0.5, ge=0, alias="ZALO_HTTP_BACKOFF")

    # Webhooks: with a public URL the bot serves one Starlette app instead of polling.
    public_base_url: str | None = Field(default=None, alias="PUBLIC_BASE_URL")
    web_host: str = Field(default="127.0.0.1", alias="WEB_HOST")
    web_port: int = Field(default=8080, alias="WEB_PORT")
    signing_secret: str = Field(default=PLACEHOLDER_SECRET, alias="SIGNING_SECRET")

    # Reminders, digests and the outbox dispatcher (bot/reminders).
    reminder_time: time = Field(default=time(8, 0), alias="REMINDER_TIME")
    digest_weekday: str = Field(default="mon", alias="DIGEST_WEEKDAY")
    digest_time: time = Field(default=time(7, 30), alias="DIGEST_TIME")
    quiet_start: time = Field(default=time(21, 0), alias="QUIET_HOURS_START")
    quiet_end: time = Field(default=time(7, 0), alias="QUIET_HOURS_END")
    scheduler_sync_minutes: int = Field(default=5, ge=1, le=1440, alias="SCHEDULER_SYNC_MINUTES")
    dispatch_limits: dict[str, ChannelLimit] = Field(default_factory=dict, alias="DISPATCH_LIMITS")
    dispatch_poll_seconds: float = Field(default=2.0, gt=0, le=300, alias="DISPATCH_POLL_SECONDS")
    dispatch_lease_seconds: int = Field(default=300, ge=10, alias="DISPATCH_LEASE_SECONDS")
    dispatch_max_attempts: int = Field(default=5, ge=1, le=50, alias="DISPATCH_MAX_ATTEMPTS")
    dispatch_backoff_seconds: float = Field(default=30.0, gt=0, alias="DISPATCH_BACKOFF_SECONDS")

    # A duplicate delivery of a message whose replies another worker may still be sending waits
    # this long (the webhook asks the platform to deliver it again later) before resending them.
    reply_lease_seconds: float = Field(default=120.0, gt=0, le=3600, alias="REPLY_LEASE_SECONDS")

    # Photos of recognised and refused applications are removed this many months after the
    # commune report deadline of their campaign (bot/review/retention.py); 0 keeps them.
    photo_retention_months: int = Field(default=12, ge=0, le=240, alias="PHOTO_RETENTION_MONTHS")

    # Several scheduler processes may run; one is elected, the others retry this often.
    scheduler_election_seconds: float = Field(default=5.0, gt=0, alias="SCHEDULER_ELECTION_SECONDS")

    @field_validator("public_base_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        """Stripped, and an http(s) address with a host (or unset when blank)."""
        value = (value or "").strip()
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("PUBLIC_BASE_URL must be an address such as https://hoctap.example.vn")
        return value

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None

        SecretBox(value)  # raises ValueError on a malformed key
        return value

    @field_validator("zalo_media_hosts")
    @classmethod
    def _media_hosts(cls, value: str) -> str:
        hosts = [h.strip().lower().rstrip(".") for h in value.split(",") if h.strip()]
        for host in hosts:
            if not (_is_ip(host) or HOST_PATTERN.fullmatch(host.removeprefix("*."))):
                raise ValueError(f"ZALO_MEDIA_HOSTS: {host!r} is not a host name, *.domain or IP address")
        return ",".join(hosts)

    @property
    def media_hosts(self) -> tuple[str, ...]:
        return tuple(h for h in self.zalo_media_hosts.split(",") if h)

    @field_validator("zalo_zns_mode")
    @classmethod
    def _zns_mode(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("production", "development"):
            raise ValueError("ZALO_ZNS_MODE must be production or development")
        return value

    @field_validator("zalo_zns_templates")
    @classmethod
    def _zns_templates(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for commune, template in value.items():
            if not isinstance(template, dict) or not str(template.get("template_id") or "").strip():
                raise ValueError(f"ZALO_ZNS_TEMPLATES[{commune!r}] needs a template_id")
            params = template.get("params") or {}
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                raise ValueError(f"ZALO_ZNS_TEMPLATES[{commune!r}].params maps template parameters to our values")
        return value

    @field_validator("digest_weekday")
    @classmethod
    def _weekday(cls, value: str) -> str:
        value = value.strip().lower()[:3]
        if value not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            raise ValueError("DIGEST_WEEKDAY must be a weekday: mon, tue, … sun")
        return value

    def channel_limit(self, channel: str) -> ChannelLimit:
        """The configured pace for a channel: DISPATCH_LIMITS over the built-in defaults."""
        for source in (self.dispatch_limits, DEFAULT_CHANNEL_LIMITS):
            if channel in source:
                return source[channel]
        return self.dispatch_limits.get("*") or DEFAULT_CHANNEL_LIMITS["*"]

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in ("vi", "en"):
            raise ValueError("DEFAULT_LOCALE must be 'vi' or 'en'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises on an unknown zone name
        return value

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def export_dir(self) -> Path:
        """Where exports are written before they are sent (beside the evidence folder). Absolute,
        so that a channel never reads an export's path as one relative to the evidence folder
        (as it does for stored photos)."""
        return (Path(self.evidence_dir).parent / "exports").absolute()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def signing_secret_is_weak(self) -> bool:
        secret = self.signing_secret
        return len(secret) < MIN_SIGNING_SECRET or "change-me" in secret.lower()

    def check_public_serving(self, serving_web: bool = False) -> None:
        """Refuse to serve anything with a guessable SIGNING_SECRET.

        The secret signs links to residents' evidence photos and exports (and may derive the Zalo
        Bot webhook secret): with the shipped placeholder anyone could forge one. It must be strong
        whenever a PUBLIC_BASE_URL is set (http or https: links are made for it) and whenever this
        process serves the web app (webhooks and /files), whatever address it listens on.
        """
        if not (self.public_base_url or serving_web) or not self.signing_secret_is_weak:
            return
        reason = "PUBLIC_BASE_URL is set" if self.public_base_url else "the web app (webhooks, /files) is served"
        raise ConfigError(
            f"SIGNING_SECRET must be a long random value (at least {MIN_SIGNING_SECRET} characters, "
            f"not the placeholder) when {reason}; make one with: "
            'python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
