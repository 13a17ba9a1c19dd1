"""The review desk in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (Selenium downloads nothing when both paths are given).

The app is served by uvicorn on a loopback port inside the test's event loop, beside the chat
engine, so the link comes from a chat transcript and the notice lands in the same outbox.
Screenshots (phone and desktop widths) are kept under the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from bot.storage.people import Role
from bot.web.app import create_web_app
from tests.support.review import make_staff, outbox, rendered, submit_citizen

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_CHROMIUM = Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()
PHONE = (390, 844)
DESKTOP = (1366, 900)

pytestmark = [
    pytest.mark.slow,
    # CI (.ci/run) installs both and sets HOCTAP_REQUIRE_CHROMIUM: there a missing browser fails.
    pytest.mark.skipif(
        not HAVE_CHROMIUM and not os.environ.get("HOCTAP_REQUIRE_CHROMIUM"),
        reason="Chromium is not installed here: apt-get install chromium chromium-driver (.ci/run does)",
    ),
]


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={profile}",
        "--lang=vi",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(*DESKTOP)
    return driver


class Served:
    """The web app on a free loopback port, served by uvicorn in this event loop."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_web_app(app), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        await self.task
        self.sock.close()


LINK = re.compile(r"https?://[^/\s]+(/desk/in/[A-Za-z0-9_-]+)")


async def test_sign_in_from_chat_review_approve_and_refuse_out_of_scope(engine, person, suite_app, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    app = suite_app
    hoa = person("hoa")
    await submit_citizen(hoa)  # Thôn Hà Lương, one photo on item 1
    can = await make_staff(engine, "can", Role.OFFICER, "ea-tul", "Trần Văn Cán")
    lan = await make_staff(engine, "lan", Role.LEADER, "buon-ken", "Lê Thị Lan")
    shots = tmp_path / "screenshots"
    shots.mkdir()

    async def link_of(staff) -> str:
        turn = await staff.says("/web")
        assert "Liên kết chỉ dùng một lần, trong 10 phút." in turn.text, turn.text
        return LINK.search(turn.text).group(1)

    async with Served(app) as served:
        driver = await asyncio.to_thread(_browser, tmp_path / "profile")

        def run(fn, *args):
            return asyncio.to_thread(fn, *args)

        def text() -> str:
            return driver.find_element(By.TAG_NAME, "body").text

        async def shows(wanted: str, seconds: float = 30) -> str:
            """The page's text once it contains `wanted` (pages load at their pace on a busy machine)."""
            page = ""
            for _ in range(int(seconds * 10)):
                try:
                    page = await run(text)
                    ready = await run(driver.execute_script, "return document.readyState") == "complete"
                except Exception:  # the page is being replaced
                    page, ready = "", False
                if wanted in page and ready:
                    return page
                await asyncio.sleep(0.1)
            raise AssertionError(f"{wanted!r} not shown; the page says: {page[:300]!r}")

        try:
            # A leader of another branch: the application's address says nothing to them.
            await run(driver.get, served.base + await link_of(lan))
            await run(lambda: driver.find_element(By.ID, "signin").click())
            assert "CD-2026-000001" not in await shows("Hồ sơ chờ xét")
            async with app.sessions() as session:
                from sqlalchemy import select

                from bot.storage.models import Submission

                sub_id = (await session.scalar(select(Submission))).id
            await run(driver.get, f"{served.base}/desk/a/{sub_id}")
            refused = await shows("Không tìm thấy hồ sơ này trong phạm vi của bạn.")
            assert "Nguyễn Thị Hoa" not in refused
            await run(lambda: driver.find_element(By.CSS_SELECTOR, "button.link").click())  # sign out
            await shows("/web")  # the signed-out page, in the browser's language

            # The commune officer signs in from their own link.
            await run(driver.get, served.base + await link_of(can))
            await run(lambda: driver.find_element(By.ID, "signin").click())
            queue = await shows("CD-2026-000001")
            assert "Nguyễn Thị Hoa" in queue
            await run(driver.save_screenshot, str(shots / "queue-desktop.png"))

            # Keyboard: j selects the first application, a opens it.
            body = await run(driver.find_element, By.TAG_NAME, "body")
            await run(body.send_keys, "j")
            await run(body.send_keys, "a")
            await shows("Điểm: 100/100 (cần 80).")
            await shows("Hồ sơ CD-2026-000001")
            for _ in range(100):  # the thumbnail is made on its first request
                if await run(
                    driver.execute_script,
                    "var i = document.querySelector('.photos img'); return i && i.complete && i.naturalWidth > 0;",
                ):
                    break
                await asyncio.sleep(0.1)
            loaded = await run(
                driver.execute_script,
                "var i = document.querySelector('.photos img'); return i && i.complete && i.naturalWidth;",
            )
            assert loaded and loaded > 0
            await run(driver.save_screenshot, str(shots / "application-desktop.png"))
            await run(driver.set_window_size, *PHONE)
            await run(driver.save_screenshot, str(shots / "application-phone.png"))
            width = await run(driver.execute_script, "return document.documentElement.scrollWidth")
            assert width <= PHONE[0] + 1  # nothing wider than a phone screen
            await run(driver.set_window_size, *DESKTOP)

            # Approve with the a shortcut. Approving needs no reason, but the branch has not
            # reviewed it yet: the commune's reason box takes the focus, Ctrl+Enter sends.
            assert "chưa được chi hội xét" in await run(text)
            await run(lambda: driver.find_element(By.TAG_NAME, "body").send_keys("a"))
            for _ in range(50):
                focused = await run(driver.execute_script, "return document.activeElement.id")
                if focused == "override":
                    break
                await asyncio.sleep(0.1)
            assert focused == "override"
            box = await run(driver.find_element, By.ID, "override")
            await run(box.send_keys, "Chi hội đã họp, biên bản gửi xã sau")
            await run(box.send_keys, Keys.CONTROL, Keys.ENTER)
            done = await shows("Đã công nhận hồ sơ CD-2026-000001 (Nguyễn Thị Hoa).")
            assert "Không có hồ sơ nào phù hợp." in done
        finally:
            await run(driver.quit)

    rows = await outbox(app)
    assert [r.kind for r in rows] == ["decision"]
    assert "CD-2026-000001" in rendered(rows[0]).text
    assert {p.name for p in shots.iterdir()} == {
        "queue-desktop.png",
        "application-desktop.png",
        "application-phone.png",
    }
    assert all(p.stat().st_size > 5000 for p in shots.iterdir())
