"""What can go wrong when talking to Zalo, as exception classes callers can act on.

    ZaloError
    ├── ZaloNetworkError          the request did not get an answer (after retries on timeouts)
    │   └── ZaloServerError       5xx after retries
    ├── ZaloAPIError              Zalo answered with an error (code + description)
    │   ├── ZaloAuthError         bad/expired token or secret (Bot Platform 401/403, OA -216/-220/…)
    │   ├── ZaloRateLimited       slow down (Bot Platform 429, OA -32 / quota)
    │   ├── OutsideWindow         OA -230/-232: no interaction within the last 7 days
    │   └── RecipientUnavailable  OA -213/-217/-227/-244 …: not following, blocked, banned
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


class ZaloRateLimited(ZaloAPIError):
    """Too many calls; `retry_after` seconds is what to wait (platform value or our estimate)."""

    def __init__(self, code: int, description: str = "", *, retry_after: float = 60.0, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(code, description, **kwargs)


class OutsideWindow(ZaloAPIError):
    """OA consultation messages need an interaction within the last 7 days (error -230)."""


class RecipientUnavailable(ZaloAPIError):
    """The person cannot receive messages from us: not following, blocked, banned or restricted.

    `reason` is a short code: not_follower, blocked, inactive, restricted.
    """

    def __init__(self, code: int, description: str = "", *, reason: str = "blocked", **kwargs) -> None:
        self.reason = reason
        super().__init__(code, description, **kwargs)


class TokenRefreshError(ZaloError):
    """The OAuth server refused our refresh token; sending stops until an admin re-authorises the OA."""

    def __init__(self, code: int | None, description: str = "") -> None:
        self.code = code
        self.description = description
        super().__init__(f"OA token refresh refused ({code}): {description}".strip())


class ZaloConfigError(ZaloError, ConfigError):
    """Settings are missing or inconsistent (named in the message)."""


class BadSignature(ZaloError):
    """A webhook request whose signature or secret does not match."""


class StaleEvent(BadSignature):
    """A correctly signed webhook event whose signed timestamp is too old (or too far ahead): a replay."""
