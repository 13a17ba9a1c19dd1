"""Logging for `hoctap run`: one format, quiet HTTP client libraries, and secrets redacted.

Bot API URLs carry the bot token (`…/bot<id>:<secret>/getUpdates`) and signed file links are
24-hour bearer credentials (`/files/<token>`). httpx logs every request URL at INFO and uvicorn's
access log every path, so:

1. httpx and httpcore log only warnings, whichever channels run;
2. as a second line of defence every log record is redacted when it is made (a log record
   factory, so it holds for every handler: ours, uvicorn's access log, a test's): bot tokens,
   `/files/…` tokens and the secrets configured in the settings are replaced by `[redacted]`,
   in the message, its arguments and a logged traceback.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from bot.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
QUIET_LOGGERS = ("httpx", "httpcore")

PATTERNS = (
    # Telegram and Zalo Bot tokens, in Bot API URLs or anywhere: <digits>:<secret>.
    (re.compile(r"(?<![A-Za-z0-9])(bot)?\d{5,}:[A-Za-z0-9_-]{8,}"), lambda m: (m.group(1) or "") + REDACTED),
    # Signed file links.
    (re.compile(r"/files/[^\s\"'<>?#]+"), lambda m: "/files/" + REDACTED),
    # The review desk's one-time sign-in links and its photo links.
    (re.compile(r"/desk/(in|p)/[^\s\"'<>?#]+"), lambda m: f"/desk/{m.group(1)}/" + REDACTED),
)
MIN_LITERAL = 8  # shorter configured values would redact ordinary words


class Redactor:
    """Replaces secrets in text: fixed patterns plus the literal values registered."""

    def __init__(self) -> None:
        self._literals: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            known = set(self._literals)
            known.update(v for v in values if v and len(v) >= MIN_LITERAL)
            self._literals = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for value in self._literals:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACT = Redactor()
_installed = False
_install_lock = threading.Lock()


def _clean(value: Any) -> Any:
    """An argument unchanged, or its redacted text when it holds a secret (types kept otherwise,
    so %d and uvicorn's access-log formatter still work)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = str(value)
    except Exception:
        return value
    cleaned = REDACT(text)
    return value if cleaned == text else cleaned


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    record.msg = _clean(record.msg)
    if isinstance(record.args, Mapping):
        record.args = {key: _clean(value) for key, value in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_clean(value) for value in record.args)
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = REDACT("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    return record


def install_redaction(settings: Settings | None = None) -> None:
    """Quiet the HTTP client loggers and redact every log record from now on (idempotent);
    the secrets in `settings` are redacted as well."""
    global _installed
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.level))
    if settings is not None:
        REDACT.add(*secrets_of(settings))
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True


def secrets_of(settings: Settings) -> list[str]:

    values = [
        settings.telegram_bot_token,
        settings.telegram_webhook_secret,
        settings.zalo_bot_token,
        settings.zalo_bot_webhook_secret,
        settings.zalo_oa_secret_key,
        settings.zalo_oa_app_secret,
        settings.zalo_oa_refresh_token,
        settings.zalo_oa_access_token,
        settings.signing_secret,
        settings.token_encryption_key,
    ]
    try:
        values.append(make_url(settings.database_url).password)
    except Exception:
        pass
    return [v for v in values if isinstance(v, str)]


def setup_logging(settings: Settings | None = None, level: int = logging.INFO) -> None:
    """Logging for a long-running command: INFO to stderr, redacted."""
    logging.basicConfig(level=level, format=FORMAT)
    install_redaction(settings)
