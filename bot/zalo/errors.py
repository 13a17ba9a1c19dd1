"""What can go wrong when talking to Zalo, as exception classes callers can act on.

ZaloError
├── ZaloNetworkError          the request did not get an answer (after retries on timeouts)
│   └── ZaloServerError       5xx after retries
├── ZaloAPIError              Zalo answered with an error (code + description)
│   ├── ZaloAuthError         bad/expired token or secret (Bot Platform 401, OA -216/-220/…)
│   ├── ZaloInternalError     Zalo's own trouble (Bot Platform 403 "Internal server error"): retry
│   ├── ZaloRateLimited       slow down (Bot Platform 429 "Quota exceeded", OA -32 / quota)
│   ├── OutsideWindow         OA -230/-232: no interaction within the window
│   ├── RecipientUnavailable  OA -213/-217/-227/-244 …: not following, blocked, banned
│   ├── ZaloBillingError      OA -320/-321, -240 …: a paid message without a Zalo Cloud Account / balance
│   └── ZaloPermissionError   OA -221/-224/-234/-248 …: the OA may not send this (tier, permission)
└── TokenRefreshError         the OA refresh token was refused: an admin must re-authorise
"""

from __future__ import annotations

from bot.config import ConfigError


class ZaloError(Exception):
    """Base class for every Zalo failure."""


class ZaloNetworkError(ZaloError):
    """No usable answer: connection failure or timeout (already retried where that is safe)."""


class ZaloServerError(ZaloNetworkError):
    """Zalo kept answering 5xx."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(f"Zalo server error HTTP {status} {detail}".strip())


class ZaloAPIError(ZaloError):
    """Zalo refused the call. `code` is the platform's error code, `description` its text."""

    def __init__(self, code: int, description: str = "", *, method: str = "", http_status: int | None = None) -> None:
        self.code = code
        self.description = description
        self.method = method
        self.http_status = http_status
        where = f"{method}: " if method else ""
        super().__init__(f"{where}Zalo error {code}: {description}".strip())


class ZaloAuthError(ZaloAPIError):
    """The token (or secret) is invalid, expired or revoked."""


class ZaloInternalError(ZaloAPIError):
    """Zalo failed on its side; the same call may well work a little later."""


class ZaloBillingError(ZaloAPIError):
    """The message would be billed and the OA cannot pay for it (no linked Zalo Cloud Account, no
    balance): an operator links or tops up the account; the person is not at fault."""


class ZaloPermissionError(ZaloAPIError):
    """The OA is not allowed to send this (not verified, tier, a permission not granted to the app):
    an operator fixes it in the OA's settings."""


class ZaloRateLimited(ZaloAPIError):
    """Too many calls or the quota is used up; `retry_after` seconds is what to wait (the
    platform's value when it gives one, otherwise our estimate: Zalo's quotas may be daily)."""

    def __init__(self, code: int, description: str = "", *, retry_after: float = 60.0, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(code, description, **kwargs)


class OutsideWindow(ZaloAPIError):
    """OA consultation messages need an interaction within the last 7 days (error -230; free only
    within 48 hours, billed beyond)."""


class RecipientUnavailable(ZaloAPIError):
    """The person cannot receive messages from us: not following, blocked, banned or restricted.

    `reason` is a short code: not_follower, blocked, inactive, restricted.
    """

    def __init__(self, code: int, description: str = "", *, reason: str = "blocked", **kwargs) -> None:
        self.reason = reason
        super().__init__(code, description, **kwargs)


class TokenRefreshError(ZaloError):
    """The OAuth server did not give us new tokens. `permanent` when the refresh token itself is
    invalid or expired (an admin must re-authorise the OA); otherwise worth trying again."""

    def __init__(self, code: int | None, description: str = "", *, permanent: bool = True) -> None:
        self.code = code
        self.description = description
        self.permanent = permanent
        super().__init__(f"OA token refresh refused ({code}): {description}".strip())


class ZaloConfigError(ZaloError, ConfigError):
    """Settings are missing or inconsistent (named in the message)."""


class BadSignature(ZaloError):
    """A webhook request whose signature or secret does not match."""


class StaleEvent(BadSignature):
    """A correctly signed webhook event whose signed timestamp is too old (or too far ahead): a replay."""
