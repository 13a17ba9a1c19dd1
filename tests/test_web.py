"""The shared web app: health check and signed, expiring file links."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bot.web.app import create_web_app, signed_url
from bot.web.signing import BadSignature, sign, verify
from tests.support.images import jpeg


async def test_signed_links_serve_files_until_they_expire(suite_app):
    blob = suite_app.evidence.store(jpeg())
    url = signed_url(suite_app, "evidence", blob.path, ttl=timedelta(hours=1))
    path = url.split("://", 1)[1].split("/", 1)[1]
    web = create_web_app(suite_app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot") as client:
        assert (await client.get("/healthz")).text == "ok"
        ok = await client.get("/" + path)
        stored = suite_app.evidence.open_path(blob.path).read_bytes()
        assert ok.status_code == 200 and ok.content == stored and ok.headers["content-type"] == "image/jpeg"
        token = path.rsplit("/", 1)[1]
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert (await client.get(f"/files/{tampered}")).status_code == 403
        suite_app.clock.advance(timedelta(hours=2))
        assert (await client.get("/" + path)).status_code == 403


async def test_links_cannot_reach_outside_their_folder(suite_app):
    suite_app.settings.export_dir.mkdir(parents=True, exist_ok=True)
    token = sign(
        suite_app.settings.signing_secret, "exports", "../../etc/passwd", suite_app.clock.now(), timedelta(hours=1)
    )
    web = create_web_app(suite_app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot") as client:
        assert (await client.get(f"/files/{token}")).status_code == 404


def test_tokens_verify_only_with_the_right_secret(clock):
    token = sign("s1", "evidence", "ab/cd/x.jpg", clock.now(), timedelta(minutes=5))
    assert verify("s1", token, clock.now()) == ("evidence", "ab/cd/x.jpg")
    for bad_secret, bad_token in (("s2", token), ("s1", "garbage"), ("s1", token + "x")):
        try:
            verify(bad_secret, bad_token, clock.now())
        except BadSignature:
            continue
        raise AssertionError("accepted a bad token")


async def test_files_are_never_sniffed_photos_show_inline_and_exports_download(suite_app):
    blob = suite_app.evidence.store(jpeg())
    export = suite_app.settings.export_dir / "x1" / "submissions-ea-tul-2026.csv"
    export.parent.mkdir(parents=True)
    export.write_text("=cmd|' /C calc'!A0\n", encoding="utf-8")
    web = create_web_app(suite_app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://bot") as client:
        photo = await client.get("/" + signed_url(suite_app, "evidence", blob.path).split("/", 3)[3])
        table = await client.get(
            "/" + signed_url(suite_app, "exports", "x1/submissions-ea-tul-2026.csv").split("/", 3)[3]
        )
    assert photo.status_code == 200 and table.status_code == 200
    assert photo.headers["x-content-type-options"] == table.headers["x-content-type-options"] == "nosniff"
    # The stored name is the photo's content hash: a neutral name is shown instead.
    assert photo.headers["content-disposition"] == 'inline; filename="photo.jpg"'
    assert blob.path.rsplit("/", 1)[-1] not in photo.headers["content-disposition"]
    assert table.headers["content-disposition"] == 'attachment; filename="submissions-ea-tul-2026.csv"'


async def test_the_web_app_is_never_served_with_a_guessable_signing_secret(suite_db, tmp_path, clock):
    from bot.config import ConfigError
    from tests.conftest import make_app

    for secret in ("change-me-in-production", "CHANGE-ME", "short"):
        app = await make_app(suite_db, tmp_path, clock, commune=False, signing_secret=secret)
        try:
            with pytest.raises(ConfigError, match="SIGNING_SECRET"):
                create_web_app(app)
        finally:
            await app.close()
