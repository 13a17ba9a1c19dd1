"""OA access tokens kept in the database and refreshed by one refresher at a time.

Zalo's refresh token is single-use: each refresh returns a new pair and the old refresh token
stops working. So:

1. In-process, an `asyncio.Lock` lets one coroutine refresh while the others wait for its result.
2. Across processes, the refresh runs inside a transaction that holds the token row locked
   (`SELECT … FOR UPDATE` on PostgreSQL, the write lock that `BEGIN IMMEDIATE` takes on SQLite).
   A second process blocks on that lock, then sees the new generation and uses the new token.
3. The new pair is committed *before* the access token is handed to anyone.
4. Before the refresh, `refresh_started_at` is committed on its own; the refresh clears it. If
   the process dies after Zalo issued a pair but before it was committed, the marker stays: the
   next refresher logs it and tries the stored refresh token again. If Zalo had consumed it, the
   OAuth server refuses it, the row is marked `needs_reauth_at`, sending stops with a clear error
   (the stored access token is still used until it expires — we refresh an hour early, so sending
   goes on meanwhile) and an admin puts a new refresh token in ZALO_OA_REFRESH_TOKEN: a changed
   setting is taken into the database at the next start.

Both tokens are stored encrypted (`SecretBox`, key TOKEN_ENCRYPTION_KEY): a dump or backup of the
database holds no usable token. Rows written before that are read as they are and encrypted at
the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.storage.models import ZaloOAToken
from bot.storage.secretbox import SecretBox, SecretBoxError
from bot.zalo.alerts import OA_REAUTH, alert_admins, clear_alert, note_alert
from bot.zalo.errors import TokenRefreshError, ZaloConfigError
from bot.zalo.oa import DEFAULT_OAUTH_BASE, refresh_access_token
from bot.zalo.transport import RetryPolicy

log = logging.getLogger(__name__)

REFRESH_TOKEN_LIFETIME = timedelta(days=90)
# A refresh marker younger than this may belong to a refresher that is still running.
STALE_MARKER = timedelta(minutes=2)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class TokenState:
    access_token: str | None
    access_expires_at: datetime | None
    generation: int
    needs_reauth: bool
    refresh_started_at: datetime | None


class OATokenManager:
    """Hands out a valid OA access token, refreshing it (once, for everyone) when needed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        http: httpx.AsyncClient,
        *,
        box: SecretBox,
        app_id: str,
        app_secret: str | None,
        oauth_base: str = DEFAULT_OAUTH_BASE,
        margin: timedelta = timedelta(hours=1),
        retry: RetryPolicy = RetryPolicy(attempts=2, backoff=0.5),
        timeout: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.http = http
        self.box = box
        self.app_id = app_id
        self.app_secret = app_secret
        self.oauth_base = oauth_base
        self.margin = margin
        self.retry = retry
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._cached: TokenState | None = None

    # --- setup ---------------------------------------------------------------------------

    async def seed(self, refresh_token: str | None, access_token: str | None = None) -> None:
        """Take the tokens from settings into the database: on first start, or when an admin
        has put a different refresh token in the settings (re-authorisation)."""
        if not refresh_token and not access_token:
            raise ZaloConfigError("Zalo OA needs ZALO_OA_REFRESH_TOKEN (or at least ZALO_OA_ACCESS_TOKEN)")
        seed = digest(refresh_token or access_token or "")
        now = self.clock.now()
        async with self.sessions.begin() as session:
            row = await self._locked_row(session)
            if row is None:
                session.add(
                    ZaloOAToken(
                        app_id=self.app_id,
                        access_token=self.box.seal(access_token),
                        refresh_token=self.box.seal(refresh_token),
                        access_expires_at=None,  # unknown: used until Zalo rejects it
                        refresh_expires_at=now + REFRESH_TOKEN_LIFETIME if refresh_token else None,
                        generation=0,
                        seed_digest=seed,
                        updated_at=now,
                    )
                )
                log.info("Zalo OA tokens for app %s stored from the settings", self.app_id)
            elif row.seed_digest != seed:
                await self._store_pair(
                    session,
                    row,
                    access_token,
                    refresh_token,
                    access_expires_at=None,
                    refresh_expires_at=now + REFRESH_TOKEN_LIFETIME if refresh_token else None,
                    now=now,
                )
                row.seed_digest = seed
                log.warning("Zalo OA tokens for app %s replaced by new ones from the settings", self.app_id)
            elif not all(v is None or self.box.is_sealed(v) for v in (row.access_token, row.refresh_token)):
                # Kept in plain text by an older version: encrypt them now.
                row.access_token = self.box.seal(self._open(row.access_token))
                row.refresh_token = self.box.seal(self._open(row.refresh_token))
                row.updated_at = now
                log.info("Zalo OA tokens for app %s are now stored encrypted", self.app_id)
        self._cached = None

    # --- the token source ----------------------------------------------------------------

    async def access_token(self) -> str:
        cached = self._cached
        if cached is not None and self._fresh(cached):
            return cached.access_token  # type: ignore[return-value]
        async with self._lock:
            state = await self.state()
            if self._fresh(state):
                self._cached = state
                return state.access_token  # type: ignore[return-value]
            return await self._refresh(state.generation)

    async def invalidate(self, token: str) -> None:
        """Zalo rejected `token`: use a newer one from the database, or refresh."""
        async with self._lock:
            state = await self.state()
            if state.access_token and state.access_token != token:
                self._cached = state  # another process refreshed already
                return
            self._cached = None
            await self._refresh(state.generation, rejected=token)

    async def ensure_fresh(self) -> None:
        """For a periodic job: refresh ahead of expiry so the chain of refresh tokens never lapses."""
        await self.access_token()

    async def state(self) -> TokenState:
        async with self.sessions() as session:
            row = await session.get(ZaloOAToken, self.app_id)
            if row is None:
                raise ZaloConfigError(f"no Zalo OA tokens stored for app {self.app_id}")
            return self._state_of(row)

    # --- internals -----------------------------------------------------------------------

    def _open(self, stored: str | None) -> str | None:
        try:
            return self.box.open(stored)
        except SecretBoxError as exc:
            raise ZaloConfigError(
                "the stored Zalo OA tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY: put the key they were "
                "written with back in the settings, or authorise the OA again and set the new ZALO_OA_REFRESH_TOKEN"
            ) from exc

    def _state_of(self, row: ZaloOAToken) -> TokenState:
        return TokenState(
            self._open(row.access_token),
            row.access_expires_at,
            row.generation,
            row.needs_reauth_at is not None,
            row.refresh_started_at,
        )

    def _fresh(self, state: TokenState) -> bool:
        if not state.access_token:
            return False
        if state.access_expires_at is None:
            return True
        return state.access_expires_at - self.margin > self.clock.now()

    def _usable(self, state: TokenState) -> bool:
        """Not fresh, but not expired yet either: good enough when refreshing is impossible."""
        if not state.access_token:
            return False
        return state.access_expires_at is None or state.access_expires_at > self.clock.now()

    async def _store_pair(
        self,
        session: AsyncSession,
        row: ZaloOAToken,
        access_token: str | None,
        refresh_token: str | None,
        *,
        access_expires_at: datetime | None,
        refresh_expires_at: datetime | None,
        now: datetime,
    ) -> None:
        """Put a new token pair in the row as the next generation: whatever failed before (a
        refused refresh, a call to re-authorise, a refresh left unfinished) is over."""
        row.access_token = self.box.seal(access_token)
        row.refresh_token = self.box.seal(refresh_token)
        row.access_expires_at = access_expires_at
        row.refresh_expires_at = refresh_expires_at
        row.generation += 1
        if row.needs_reauth_at is not None:
            await clear_alert(session, OA_REAUTH)
        row.needs_reauth_at = None
        row.refresh_started_at = None
        row.last_error = None
        row.updated_at = now

    async def _locked_row(self, session: AsyncSession) -> ZaloOAToken | None:
        return await session.scalar(select(ZaloOAToken).where(ZaloOAToken.app_id == self.app_id).with_for_update())

    async def _refresh(self, seen_generation: int, rejected: str | None = None) -> str:
        """Refresh unless someone else did since we looked (generation moved on). `rejected` is
        an access token Zalo refused, never handed out again."""
        now = self.clock.now()
        # Step 1: a durable marker that a refresh is starting (cleared when it finishes).
        async with self.sessions.begin() as session:
            row = await self._locked_row(session)
            if row is None:
                raise ZaloConfigError(f"no Zalo OA tokens stored for app {self.app_id}")
            if row.generation != seen_generation:
                state = self._state_of(row)
                self._cached = state
                if state.access_token:
                    return state.access_token
            if row.needs_reauth_at is not None:
                state = self._state_of(row)
                if self._usable(state) and state.access_token != rejected:
                    log.error("Zalo OA needs re-authorisation; using the current access token until it expires")
                    return state.access_token  # type: ignore[return-value]
                raise TokenRefreshError(None, f"Zalo OA needs re-authorisation: {row.last_error or 'refresh refused'}")
            if not row.refresh_token:
                raise TokenRefreshError(None, "no refresh token stored: set ZALO_OA_REFRESH_TOKEN")
            if self.app_secret is None:
                raise ZaloConfigError("ZALO_OA_APP_SECRET is needed to refresh the OA access token")
            if row.refresh_started_at is not None and now - row.refresh_started_at > STALE_MARKER:
                log.warning(
                    "an OA token refresh started at %s never finished; if Zalo issued a new pair then, "
                    "it was lost and the stored refresh token may be refused",
                    row.refresh_started_at.isoformat(),
                )
            row.refresh_started_at = now
            row.updated_at = now
            seen_generation = row.generation

        # Step 2: refresh while holding the row (one refresher across processes), save, commit.
        refused: TokenRefreshError | None = None
        async with self.sessions.begin() as session:
            row = await self._locked_row(session)
            assert row is not None
            if row.generation != seen_generation and row.access_token:
                state = self._state_of(row)
                self._cached = state
                return state.access_token  # type: ignore[return-value]
            try:
                pair = await refresh_access_token(
                    self.http,
                    oauth_base=self.oauth_base,
                    app_id=self.app_id,
                    app_secret=self.app_secret or "",
                    refresh_token=self._open(row.refresh_token) or "",
                    retry=self.retry,
                    timeout=self.timeout,
                )
            except TokenRefreshError as exc:
                # Zalo answered without a pair: nothing was issued, so the marker can go. Only a
                # refresh token refused as invalid or expired needs an admin; anything else
                # (an unreadable answer, another error) is tried again at the next refresh.
                now = self.clock.now()
                if exc.permanent:
                    newly = row.needs_reauth_at is None
                    row.needs_reauth_at = now
                    if newly:
                        await note_alert(session, OA_REAUTH, now, detail=str(exc))
                        await alert_admins(session, OA_REAUTH, now)
                row.last_error = str(exc)[:1000]
                row.refresh_started_at = None
                row.updated_at = now
                refused = exc
            else:
                done = self.clock.now()
                await self._store_pair(
                    session,
                    row,
                    pair.access_token,
                    pair.refresh_token,
                    access_expires_at=done + timedelta(seconds=pair.expires_in),
                    refresh_expires_at=done + REFRESH_TOKEN_LIFETIME,
                    now=done,
                )
                row.refreshed_at = done
            state = self._state_of(row)
        # Committed: only now is the new token used.
        if refused is not None:
            if refused.permanent:
                log.error("Zalo OA refresh token refused (%s): an admin must re-authorise the OA", refused)
            else:
                log.warning("Zalo OA token refresh failed (%s); trying again later", refused)
            self._cached = None
            if self._usable(state) and state.access_token != rejected:
                return state.access_token  # type: ignore[return-value]
            raise refused
        log.info(
            "Zalo OA access token refreshed (generation %d, valid until %s)", state.generation, state.access_expires_at
        )
        self._cached = state
        return state.access_token  # type: ignore[return-value]
