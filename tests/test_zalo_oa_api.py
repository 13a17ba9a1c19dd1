"""The Zalo OA client and its token keeping, against the fake OA + OAuth server over real HTTP.

Token tests run on SQLite and PostgreSQL (the `app` fixture)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select, update

from bot.messages import Outgoing
from bot.storage.models import OperatorAlert, ZaloOAToken
from bot.storage.secretbox import SecretBox
from bot.zalo.errors import (
    BadSignature,
    OutsideWindow,
    RecipientUnavailable,
    TokenRefreshError,
    ZaloAPIError,
    ZaloRateLimited,
    ZaloServerError,
)
from bot.zalo.oa import ZaloOAClient, expected_signature, prepare_image, verify_signature
from bot.zalo.tokens import OATokenManager
from bot.zalo.transport import RetryPolicy
from tests.support.images import jpeg, lossless_webp, png
from tests.support.loop import run_while_ticking
from tests.support.zalo import fake_oa  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _u1_wrote_to_the_oa(fake_oa):
    """The person these tests write to has just written to the OA (within the free window)."""
    fake_oa.interacted("u1")


ROOT = Path(__file__).resolve().parent.parent
FAST = RetryPolicy(attempts=3, backoff=0.01)


def manager_for(app, fake, http) -> OATokenManager:
    return OATokenManager(
        app.sessions,
        app.clock,
        http,
        box=SecretBox(app.settings.token_encryption_key),
        app_id=fake.app_id,
        app_secret=fake.app_secret,
        oauth_base=fake.base_url,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )


async def stored_row(app) -> ZaloOAToken:
    """The token row as it is in the database (tokens encrypted)."""
    async with app.sessions() as session:
        return await session.scalar(select(ZaloOAToken))


async def token_row(app) -> ZaloOAToken:
    """The token row with its tokens decrypted (a detached copy: nothing is written back)."""
    row = await stored_row(app)
    box = SecretBox(app.settings.token_encryption_key)
    assert box.is_sealed(row.access_token) or row.access_token is None
    assert box.is_sealed(row.refresh_token) or row.refresh_token is None
    row.access_token, row.refresh_token = box.open(row.access_token), box.open(row.refresh_token)
    return row


def noisy_png(size: int = 900) -> bytes:
    """A PNG well over 1 MB (random pixels do not compress)."""
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_send_text_image_and_profile(suite_app, fake_oa):
    access, refresh = fake_oa.issue_pair()
    fake_oa.followers["u1"] = {"display_name": "Nguyễn Thị Hoa", "user_is_follower": True, "avatar": "https://a/1.jpg"}
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await tokens.seed(refresh, access)
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        assert len(await client.send_text("u1", "Chào bạn!")) == 1
        big = noisy_png()
        assert len(big) > 1024 * 1024
        attachment = await client.upload_image(big)
        await client.send_image("u1", attachment_id=attachment, caption="Ảnh minh chứng")
        profile = await client.get_follower_profile("u1")
        with pytest.raises(RecipientUnavailable):
            await client.get_follower_profile("stranger")
    assert [(s.user_id, s.text, s.attachment_id) for s in fake_oa.sent] == [
        ("u1", "Chào bạn!", None),
        ("u1", "Ảnh minh chứng", attachment),
    ]
    uploaded = fake_oa.uploads[attachment]
    assert len(uploaded) <= 1024 * 1024
    with Image.open(io.BytesIO(uploaded)) as image:
        assert image.format == "JPEG" and image.size[0] <= 900  # re-encoded (and scaled down if needed)
    assert (profile.display_name, profile.is_follower) == ("Nguyễn Thị Hoa", True)
    assert fake_oa.refresh_calls == 0


def test_prepare_image_keeps_small_jpeg_and_png_and_converts_others():
    small = jpeg()
    assert prepare_image(small).data == small
    assert prepare_image(png()).mime == "image/png"
    webp = io.BytesIO()
    Image.new("RGBA", (40, 30), (1, 2, 3, 128)).save(webp, "WEBP")
    converted = prepare_image(webp.getvalue())
    assert converted.mime == "image/jpeg"
    with pytest.raises(ValueError):
        prepare_image(b"not an image")


def test_prepare_image_refuses_canvas_bombs_and_scales_large_images_down():
    # 25 megapixels of WebP in a few KB: decoding it would take far more than one decode may.
    with pytest.raises(ValueError):
        prepare_image(lossless_webp((5000, 5000)))
    prepared = prepare_image(lossless_webp((3000, 2000), (30, 90, 160)))
    with Image.open(io.BytesIO(prepared.data)) as image:
        assert (prepared.mime, image.format, image.size) == ("image/jpeg", "JPEG", (2560, 1707))


def gradient_webp(size: tuple[int, int]) -> bytes:
    """A large valid lossless WebP (always re-encoded for upload: the API takes JPEG or PNG)."""
    band = Image.linear_gradient("L").resize(size)
    buffer = io.BytesIO()
    Image.merge("RGB", (band, band.transpose(Image.Transpose.FLIP_LEFT_RIGHT), band)).save(
        buffer, "WEBP", lossless=True, method=0
    )
    return buffer.getvalue()


async def test_uploading_a_large_image_keeps_the_event_loop_running(suite_app, fake_oa):
    access, refresh = fake_oa.issue_pair()
    big = gradient_webp((3200, 3200))  # 10 megapixels: decoded, scaled and re-encoded for upload
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await tokens.seed(refresh, access)
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        ticked = await run_while_ticking(lambda: client.upload_image(big))
    attachment, took, ticks = ticked.result, ticked.took, ticked.ticks
    with Image.open(io.BytesIO(fake_oa.uploads[attachment])) as image:
        assert image.format == "JPEG" and max(image.size) <= 2560
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    # On the event loop, preparing the image would stop the ticker for nearly all of `took`; in a
    # thread it keeps ticking. Loose bounds: the machine may be busy.
    assert max(gaps) < max(0.5, took * 0.6), (took, max(gaps))


async def test_errors_with_http_200_map_to_exceptions_and_are_not_retried(suite_app, fake_oa):
    access, refresh = fake_oa.issue_pair()
    fake_oa.script(
        "message",
        (200, {"error": -230, "message": "User has not interacted with the OA in the past 7 days"}),
        (200, {"error": -213, "message": "User has not followed OA"}),
        (200, {"error": -32, "message": "Your application reached limit call api"}),
        (200, {"error": -201, "message": "recipient is invalid"}),
        (400, {"error": -201, "message": "bad"}),
    )
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await tokens.seed(refresh, access)
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        with pytest.raises(OutsideWindow) as window:
            await client.send_text("u1", "x")
        assert window.value.code == -230
        with pytest.raises(RecipientUnavailable) as follower:
            await client.send_text("u1", "x")
        assert follower.value.reason == "not_follower"
        with pytest.raises(ZaloRateLimited) as limited:
            await client.send_text("u1", "x")
        assert limited.value.retry_after > 0
        with pytest.raises(ZaloAPIError) as invalid:
            await client.send_text("u1", "x")
        assert (invalid.value.code, invalid.value.description, invalid.value.http_status) == (
            -201,
            "recipient is invalid",
            200,
        )
        with pytest.raises(ZaloAPIError):
            await client.send_text("u1", "x")
    assert fake_oa.api_calls.count("message") == 5 and fake_oa.sent == []


async def test_retries_on_5xx_only(suite_app, fake_oa):
    access, refresh = fake_oa.issue_pair()
    fake_oa.script("message", (502, {}), (503, {}))
    fake_oa.script("upload", (500, {}), (500, {}), (500, {}))
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await tokens.seed(refresh, access)
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        await client.send_text("u1", "qua hai lần lỗi")
        with pytest.raises(ZaloServerError):
            await client.upload_image(jpeg())
    assert fake_oa.api_calls == ["message"] * 3 + ["upload"] * 3
    assert [s.text for s in fake_oa.sent] == ["qua hai lần lỗi"]


async def test_refreshed_pair_is_saved_before_it_is_used(app, fake_oa):
    _access, refresh = fake_oa.issue_pair()
    seen_in_db = []

    async def check_saved(sent):
        row = await token_row(app)
        seen_in_db.append((sent.access_token, row.access_token, row.refresh_token, row.refresh_started_at))

    fake_oa.on_message = check_saved
    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        await tokens.seed(refresh)  # no access token yet: the first send refreshes
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        await client.send_text("u1", "xin chào")
    new_access, new_refresh = fake_oa.issued[-1]
    assert seen_in_db == [(new_access, new_access, new_refresh, None)]
    assert fake_oa.consumed == {refresh} and fake_oa.refresh_calls == 1
    row = await token_row(app)
    assert row.generation == 1 and row.access_expires_at == app.clock.now() + timedelta(seconds=90000)


async def test_a_rejected_access_token_is_replaced_once(app, fake_oa):
    _access, refresh = fake_oa.issue_pair()
    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        await tokens.seed(refresh, "AT-revoked-by-zalo")
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        await client.send_text("u1", "một")
        await client.send_text("u1", "hai")
    assert fake_oa.refresh_calls == 1
    assert [s.access_token for s in fake_oa.sent] == [fake_oa.issued[-1][0]] * 2


async def test_one_refresher_at_a_time_across_processes(app, fake_oa, tmp_path, clock):
    """Two token managers on two engines (as two worker processes), ten callers at once."""
    from tests.conftest import make_app

    _access, refresh = fake_oa.issue_pair()

    async def slow_answer():
        await asyncio.sleep(0.2)  # widen the window in which others could refresh too

    fake_oa.before_answer = slow_answer
    other = await make_app(app.settings.database_url, tmp_path / "other", clock, commune=False)
    try:
        async with httpx.AsyncClient() as http:
            first, second = manager_for(app, fake_oa, http), manager_for(other, fake_oa, http)
            await first.seed(refresh)
            await second.seed(refresh)  # same settings in the second process: no change
            results = await asyncio.gather(*(m.access_token() for m in [first, second] * 5))
    finally:
        await other.close()
    assert fake_oa.refresh_calls == 1
    assert set(results) == {fake_oa.issued[-1][0]}
    assert (await token_row(app)).generation == 1


async def _refresh_in_child_killed(app, fake_oa, *, stage: str) -> int:
    """Run a refresh in another process and kill -9 it at `stage` of the OAuth call."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.zalo_refresh_child",
        app.settings.database_url,
        fake_oa.base_url,
        fake_oa.app_id,
        fake_oa.app_secret,
        app.clock.now().isoformat(),
        app.settings.token_encryption_key,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    def kill():
        os.kill(proc.pid, signal.SIGKILL)
        return "drop"

    setattr(fake_oa, stage, kill)
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    setattr(fake_oa, stage, None)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return proc.returncode


async def _seed_expiring(app, fake_oa, tokens):
    access, refresh = fake_oa.issue_pair()
    await tokens.seed(refresh, access)
    async with app.sessions.begin() as session:  # 30 minutes left: inside the refresh margin
        await session.execute(update(ZaloOAToken).values(access_expires_at=app.clock.now() + timedelta(minutes=30)))
    return access, refresh


@pytest.mark.slow
async def test_crash_after_zalo_issued_a_pair_but_before_it_was_saved(app, fake_oa):
    """Outcome: the pair Zalo issued is lost and the stored refresh token was consumed. The
    marker shows the interrupted refresh; the old access token keeps working until it expires;
    the next refresh is refused, the row says re-authorisation is needed, and sending stops with
    a clear error once the old token expires. A new refresh token in the settings recovers."""
    from bot.channels.base import TransientSendError
    from bot.channels.zalo_oa import ZaloOASender
    from bot.storage.people import get_or_create_account

    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        old_access, old_refresh = await _seed_expiring(app, fake_oa, tokens)
        await _refresh_in_child_killed(app, fake_oa, stage="before_answer")

        row = await token_row(app)
        assert fake_oa.consumed == {old_refresh}  # Zalo did refresh…
        assert (row.refresh_token, row.access_token, row.generation) == (
            old_refresh,
            old_access,
            0,
        )  # …we never saved it
        assert row.refresh_started_at == app.clock.now()  # the marker of the interrupted refresh

        app.clock.advance(timedelta(minutes=5))
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        await client.send_text("u1", "vẫn gửi được")  # the old access token still works
        assert fake_oa.sent[-1].access_token == old_access
        row = await token_row(app)
        assert row.needs_reauth_at is not None and "-14014" in row.last_error and row.refresh_started_at is None
        assert fake_oa.refresh_calls == 2  # the child's and one refused retry

        app.clock.advance(timedelta(minutes=30))  # the old access token has expired now
        with pytest.raises(TokenRefreshError):
            await tokens.access_token()
        assert fake_oa.refresh_calls == 2  # a known-dead refresh token is not tried again
        async with app.sessions.begin() as session:
            account = await get_or_create_account(session, "zalo_oa", "u1", "u1", app.clock.now())
            account.last_inbound_at = app.clock.now()
        with pytest.raises(TransientSendError):
            await ZaloOASender(app, client).send(account, [Outgoing("x")])

        _new_access, new_refresh = fake_oa.issue_pair()  # an admin re-authorises the OA
        await tokens.seed(new_refresh)
        await client.send_text("u1", "đã khôi phục")
    row = await token_row(app)
    assert row.needs_reauth_at is None and row.generation == 2
    assert fake_oa.sent[-1].text == "đã khôi phục" and fake_oa.sent[-1].access_token == row.access_token


@pytest.mark.slow
async def test_crash_before_zalo_consumed_the_token_is_retried(app, fake_oa):
    """Outcome: nothing was lost; the marker is seen and the same refresh token works."""
    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        _old_access, old_refresh = await _seed_expiring(app, fake_oa, tokens)
        await _refresh_in_child_killed(app, fake_oa, stage="before_consume")
        assert (await token_row(app)).refresh_started_at is not None and fake_oa.consumed == set()
        app.clock.advance(timedelta(minutes=5))
        token = await tokens.access_token()
    row = await token_row(app)
    assert token == row.access_token == fake_oa.issued[-1][0]
    assert fake_oa.consumed == {old_refresh} and row.generation == 1 and row.refresh_started_at is None


def test_webhook_signature():
    body = b'{"app_id":"1","event_name":"user_send_text","timestamp":"1766619597466"}'
    good = expected_signature("1", body, "1766619597466", "oa-secret")
    assert good.startswith("mac=") and len(good) == 68
    verify_signature(body, good, app_id="1", secret_key="oa-secret")
    verify_signature(body, good[4:], app_id="1", secret_key="oa-secret")  # without the "mac=" prefix
    for signature, secret in ((good, "other"), (None, "oa-secret"), ("mac=00", "oa-secret")):
        with pytest.raises(BadSignature):
            verify_signature(body, signature, app_id="1", secret_key=secret)
    with pytest.raises(BadSignature):
        verify_signature(body + b" ", good, app_id="1", secret_key="oa-secret")
    # A timestamp sent as a header is accepted too.
    no_stamp = b'{"event_name":"follow"}'
    verify_signature(
        no_stamp, expected_signature("1", no_stamp, "42", "s"), app_id="1", secret_key="s", header_timestamp="42"
    )


async def test_tokens_are_stored_encrypted_and_backups_hold_none(app, fake_oa, tmp_path):
    _access, refresh = fake_oa.issue_pair()
    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        await tokens.seed(refresh)
        access = await tokens.access_token()  # a refresh: a new pair is stored
    new_access, new_refresh = fake_oa.issued[-1]
    assert access == new_access
    raw = await stored_row(app)
    for stored, plain in ((raw.access_token, new_access), (raw.refresh_token, new_refresh)):
        assert stored.startswith("fernet:") and plain not in stored
    assert (await token_row(app)).access_token == new_access  # and it reads back
    if app.settings.is_sqlite:  # the backup holds the database file as it is (a pg_dump is compressed)
        from bot.ops.backup import backup

        await app.engine.dispose()
        folder = backup(
            app.settings.database_url, tmp_path / "no-evidence", tmp_path / "backups", app.clock.now()
        ).folder
        data = (folder / "database.sqlite").read_bytes()
        assert b"fernet:" in data and new_access.encode() not in data and new_refresh.encode() not in data


async def test_plaintext_tokens_of_an_older_version_keep_working_and_are_encrypted_at_start(app, fake_oa):
    from bot.zalo.tokens import digest

    access, refresh = fake_oa.issue_pair()
    async with app.sessions.begin() as session:  # the row as the previous version wrote it
        session.add(
            ZaloOAToken(
                app_id=fake_oa.app_id,
                access_token=access,
                refresh_token=refresh,
                generation=3,
                seed_digest=digest(refresh),
                updated_at=app.clock.now(),
            )
        )
    async with httpx.AsyncClient() as http:
        tokens = manager_for(app, fake_oa, http)
        assert await tokens.access_token() == access  # read as it is
        await tokens.seed(refresh, access)  # what every start does: the settings are unchanged
        raw = await stored_row(app)
        assert raw.access_token.startswith("fernet:") and raw.refresh_token.startswith("fernet:")
        assert raw.generation == 3 and access not in raw.access_token
        client = ZaloOAClient(tokens, fake_oa.base_url, client=http, retry=FAST)
        await client.send_text("u1", "vẫn gửi được")
    assert fake_oa.sent[-1].access_token == access and fake_oa.refresh_calls == 0
    row = await token_row(app)
    assert (row.access_token, row.refresh_token) == (access, refresh)


async def test_a_wrong_key_is_named_and_a_new_authorisation_recovers(app, fake_oa):
    from bot.zalo.errors import ZaloConfigError

    access, refresh = fake_oa.issue_pair()
    async with httpx.AsyncClient() as http:
        await manager_for(app, fake_oa, http).seed(refresh, access)
        other_key = "r3Zg45P6kYkDjFohEuVqdiQIIFh82ewqrxir2tnEIyM="
        stranger = OATokenManager(
            app.sessions,
            app.clock,
            http,
            box=SecretBox(other_key),
            app_id=fake_oa.app_id,
            app_secret=fake_oa.app_secret,
            oauth_base=fake_oa.base_url,
        )
        await stranger.seed(refresh, access)  # unchanged settings: nothing is rewritten
        with pytest.raises(ZaloConfigError, match="TOKEN_ENCRYPTION_KEY"):
            await stranger.access_token()
        new_access, new_refresh = fake_oa.issue_pair()  # the OA authorised again
        await stranger.seed(new_refresh, new_access)
        assert await stranger.access_token() == new_access
    # Rotation: the new key first, the old one after it, reads both.
    both = SecretBox(f"{other_key},{app.settings.token_encryption_key}")
    assert both.open(SecretBox(app.settings.token_encryption_key).seal("x")) == "x"
    assert both.open((await stored_row(app)).access_token) == new_access


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"error": -14002, "error_name": "Invalid secret key"}),  # a setting, not the refresh token
        (200, {"error": -32, "error_name": "Too many requests"}),
        (200, {"message": "something went wrong"}),  # JSON without tokens or a code
    ],
)
async def test_a_refresh_that_fails_for_another_reason_is_tried_again_not_reauthorised(suite_app, fake_oa, answer):
    """Only an invalid or expired refresh token needs an admin; other failures are retried."""
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await _seed_expiring(suite_app, fake_oa, tokens)
        suite_app.clock.advance(timedelta(minutes=31))  # the access token has expired
        fake_oa.script("oauth", answer)
        with pytest.raises(TokenRefreshError) as failed:
            await tokens.access_token()
        assert not failed.value.permanent
        row = await token_row(suite_app)
        assert row.needs_reauth_at is None and row.refresh_started_at is None
        async with suite_app.sessions() as session:
            assert (await session.scalars(select(OperatorAlert))).all() == []
        # The next try works with the same refresh token.
        assert await tokens.access_token() == fake_oa.issued[-1][0]
    assert (await token_row(suite_app)).generation == 1


async def test_a_refused_refresh_token_needs_reauthorisation_and_admins_are_told_in_chat(suite_app, fake_oa):
    from bot.storage.models import OutboxMessage, Person
    from bot.storage.people import get_or_create_account, grant_role

    now = suite_app.clock.now()
    async with suite_app.sessions.begin() as session:
        admin = Person(full_name="Quản trị", created_at=now)
        session.add(admin)
        await session.flush()
        await grant_role(session, admin, "admin", None, granted_by=None, now=now)
        account = await get_or_create_account(session, "telegram", "tg-admin", "tg-admin", now)
        account.person_id = admin.id
    async with httpx.AsyncClient() as http:
        tokens = manager_for(suite_app, fake_oa, http)
        await _seed_expiring(suite_app, fake_oa, tokens)
        suite_app.clock.advance(timedelta(minutes=31))
        fake_oa.refresh_tokens.clear()  # Zalo no longer knows the stored refresh token
        with pytest.raises(TokenRefreshError) as refused:
            await tokens.access_token()
        assert refused.value.permanent
        with pytest.raises(TokenRefreshError):
            await tokens.access_token()  # not tried again, and the admins are told once
    assert (await token_row(suite_app)).needs_reauth_at is not None
    async with suite_app.sessions() as session:
        (alert,) = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "alert"))).all()
        (noted,) = (await session.scalars(select(OperatorAlert))).all()
    assert alert.account_id == account.id and alert.payload["key"] == "alert.zalo_oa_reauth"
    assert noted.key == "zalo_oa_reauth"
