"""The review desk's pages: server time per page, as a ratio to a static file served by the same
app in the same run (`/desk/static/desk.css`, through the same middleware).

Seeded on a fresh SQLite file (or a given empty PostgreSQL database): the example commune, 1 000
applications waiting for the commune officer (ten answers each; every tenth with a photo, some
photos shared between applications, so the reused-photo flag has work to do), and one
application with 30 photos (three per item). Requests go straight to the ASGI app with httpx
(no network, no uvicorn): what is timed is the server's own work, signed in as that officer,
as wall time and as CPU time of the process (all threads, the SQLite driver's included), the
steadier figure on a shared machine. Medians over the rounds; the static file is asked three
times a round.

    .venv/bin/python bench/web_desk.py                # about a minute
    .venv/bin/python bench/web_desk.py --rounds 5
    .venv/bin/python bench/web_desk.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/EMPTY_DB
    .venv/bin/python bench/web_desk.py --rounds 1 --screenshots docs   # also the README's pictures
                                                                       # (Debian's chromium + chromedriver)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUEUE = 1000
PHOTOS = 30
SECRET = "bench-signing-secret-0123456789"


def _jpeg(seed: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1600, 1200), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    draw = ImageDraw.Draw(image)
    for step in range(0, 1600, 40):
        draw.line((step, 0, 1600 - step, 1200), fill=((seed * 11 + step) % 256, 120, 200), width=6)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


async def seed(app) -> tuple[int, str]:
    """The commune, the queue and the big application; returns its id and an officer's cookie."""
    from sqlalchemy import select

    from bot.domain.criteria import Level
    from bot.storage.commune import apply_commune, branches_of, load_commune_file
    from bot.storage.models import Answer, Campaign, Evidence, OrgUnit, Person, Submission
    from bot.storage.people import Role, grant_role
    from bot.web.auth import issue_link, redeem_link

    now = app.clock.now()
    criteria = app.catalog.for_title("cd", 2026)
    items = list(criteria.items)
    pool = [app.evidence.store(_jpeg(i)) for i in range(8)]
    big = [app.evidence.store(_jpeg(100 + i)) for i in range(PHOTOS)]
    async with app.sessions.begin() as session:
        commune = await apply_commune(session, load_commune_file(ROOT / "examples" / "commune.yaml"), now)
        branches = [b.id for b in await branches_of(session, commune.id)]
        campaign = await session.scalar(
            select(Campaign).where(Campaign.commune_id == commune.id, Campaign.year == 2026)
        )
        people = [
            Person(
                full_name=f"Nguyễn Văn Người {i}",
                birth_year=1950 + i % 50,
                branch_id=branches[i % len(branches)],
                created_at=now,
                consent_at=now,
            )
            for i in range(QUEUE + 1)
        ]
        session.add_all(people)
        await session.flush()
        subs = []
        for i, person in enumerate(people):
            submitted = now - timedelta(days=i % 20, minutes=i)
            subs.append(
                Submission(
                    campaign_id=campaign.id,
                    title="cd",
                    subject_kind="person",
                    subject_key=f"p:{person.id}",
                    person_id=person.id,
                    branch_id=person.branch_id,
                    criteria_set_id=criteria.id,
                    state="recommended" if i % 3 else "submitted",
                    score=100,
                    recognisable=True,
                    created_by_person_id=person.id,
                    created_at=submitted,
                    updated_at=submitted,
                    submitted_at=submitted,
                )
            )
        session.add_all(subs)
        await session.flush()
        for sub in subs:
            sub.reference = f"CD-2026-{sub.id:06d}"
            for item in items:
                session.add(
                    Answer(
                        submission_id=sub.id,
                        item_id=item.id,
                        level=Level.ACHIEVED.value,
                        points=item.max_points,
                        note="Có giấy xác nhận của thôn" if item.id == items[-1].id else None,
                        answered_at=now,
                    )
                )
        for index, sub in enumerate(subs[:QUEUE]):
            if index % 10 == 0:
                blob = pool[index % len(pool)]
                session.add(
                    Evidence(
                        submission_id=sub.id,
                        item_id=items[0].id,
                        sha256=blob.sha256,
                        path=blob.path,
                        size=1,
                        mime="image/jpeg",
                        created_at=now,
                    )
                )
        heavy = subs[QUEUE]
        for index, blob in enumerate(big):
            session.add(
                Evidence(
                    submission_id=heavy.id,
                    item_id=items[index % len(items)].id,
                    sha256=blob.sha256,
                    path=blob.path,
                    size=1,
                    mime="image/jpeg",
                    created_at=now,
                )
            )
        officer = Person(full_name="Trần Văn Cán", created_at=now, consent_at=now)
        session.add(officer)
        await session.flush()
        await grant_role(
            session, officer, Role.OFFICER, await session.get(OrgUnit, commune.id), granted_by=None, now=now
        )
        opened = await redeem_link(session, await issue_link(session, officer.id, now), now)
        return heavy.id, opened.cookie


async def screenshots(app, cookie: str, heavy_id: int, folder: Path) -> None:
    """The queue and the 30-photo application in headless Chromium, at a desktop width."""
    import socket

    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from bot.web.app import create_web_app
    from bot.web.auth import COOKIE

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_web_app(app), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = await asyncio.to_thread(
            webdriver.Chrome, service=Service(executable_path="/usr/bin/chromedriver"), options=options
        )
        try:
            await asyncio.to_thread(driver.set_window_size, 1280, 860)
            await asyncio.to_thread(driver.get, base + "/desk/static/desk.css")
            await asyncio.to_thread(driver.add_cookie, {"name": COOKIE, "value": cookie, "path": "/desk"})
            folder.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(driver.get, base + "/desk?flagged=1")
            await asyncio.to_thread(driver.save_screenshot, str(folder / "review-desk-queue.png"))
            await asyncio.to_thread(driver.get, f"{base}/desk/a/{heavy_id}")
            await asyncio.to_thread(driver.set_window_size, 1280, 1280)
            loaded = (
                "return Array.from(document.images).filter(i => i.getBoundingClientRect().top < innerHeight)"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            for _ in range(300):  # the first view makes the thumbnails
                if await asyncio.to_thread(driver.execute_script, loaded):
                    break
                await asyncio.sleep(0.1)
            await asyncio.to_thread(driver.save_screenshot, str(folder / "review-desk.png"))
        finally:
            await asyncio.to_thread(driver.quit)
            server.should_exit = True
            await task
            sock.close()
    print(f"screenshots in {folder}")


async def run(database_url: str | None, rounds: int, shots: Path | None = None) -> None:
    import httpx

    from bot.app import build_app
    from bot.clock import VN_TZ, FakeClock
    from bot.config import load_settings
    from bot.web.app import create_web_app
    from bot.web.auth import COOKIE

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        settings = load_settings(
            database_url=database_url or f"sqlite+aiosqlite:///{base / 'bench.db'}",
            evidence_dir=base / "evidence",
            signing_secret=SECRET,
        )
        app = await build_app(settings, FakeClock(datetime(2026, 11, 25, 9, 0, tzinfo=VN_TZ)))
        started = time.perf_counter()
        heavy_id, cookie = await seed(app)
        print(f"seeded {QUEUE} applications and one with {PHOTOS} photos in {time.perf_counter() - started:.1f} s")
        if shots is not None:
            await screenshots(app, cookie, heavy_id, shots)
        web = create_web_app(app)
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://desk", cookies={COOKIE: cookie}) as client:

            async def timed(path: str) -> tuple[tuple[float, float], httpx.Response]:
                """(wall seconds, CPU seconds of this process, all threads) and the response."""
                wall, cpu = time.perf_counter(), time.process_time()
                response = await client.get(path)
                spent = (time.perf_counter() - wall, time.process_time() - cpu)
                assert response.status_code == 200, (path, response.status_code)
                return spent, response

            pages = {
                "static file (baseline)": "/desk/static/desk.css",
                f"queue, {QUEUE} waiting (page of 100)": "/desk",
                "queue, flagged evidence only": "/desk?flagged=1",
                "queue, newest first, page 5": "/desk?sort=new&page=5",
                f"application with {PHOTOS} photos": f"/desk/a/{heavy_id}",
                "statistics (figures, no chart)": "/desk/stats",
            }
            # First view of the heavy application: its 30 thumbnails are made (once).
            _spent, page = await timed(pages[f"application with {PHOTOS} photos"])
            import re

            thumbs = re.findall(r'<img src="(/desk/p/[^"]+)"', page.text)
            assert len(thumbs) == PHOTOS, len(thumbs)

            async def all_thumbs() -> tuple[float, float]:
                spent = [(await timed(thumb))[0] for thumb in thumbs]
                return sum(s[0] for s in spent), sum(s[1] for s in spent)

            cold = await all_thumbs()
            warm = await all_thumbs()
            assert "Nguyễn Văn Người" in (await timed("/desk"))[1].text
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in pages}
            for _ in range(rounds):
                for name, path in pages.items():
                    for _ in range(3 if name.startswith("static") else 1):
                        times[name].append((await timed(path))[0])
        base_wall = statistics.median(t[0] for t in times["static file (baseline)"])
        base_cpu = statistics.median(t[1] for t in times["static file (baseline)"])
        print(f"\n{'page':42} {'wall ms':>9} {'× static':>9} {'CPU ms':>9} {'× static':>9}")

        def line(name: str, wall: float, cpu: float) -> None:
            print(f"{name:42} {wall * 1000:9.1f} {wall / base_wall:9.1f} {cpu * 1000:9.1f} {cpu / base_cpu:9.1f}")

        for name, values in times.items():
            line(name, statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
        line(f"{PHOTOS} thumbnails, first time (made)", *cold)
        line(f"{PHOTOS} thumbnails, again (cached)", *warm)
        await app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--screenshots", type=Path, help="also save the README's screenshots in this folder")
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.rounds, args.screenshots))


if __name__ == "__main__":
    main()
