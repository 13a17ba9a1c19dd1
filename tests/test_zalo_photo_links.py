"""Photo links in Zalo events are fetched only from the platform's hosts (ZALO_MEDIA_HOSTS), never
through a redirect to elsewhere and never from a private, loopback or link-local address, and every
refusal gets the same answer. The bot runs against the fake OA; the allowed photo host is a fake on
127.0.0.1 (listed as that one address in the tests' settings), "elsewhere" is a second fake on
127.0.0.2 that counts every request reaching it."""

from __future__ import annotations

import ipaddress
import logging

import httpx
import pytest
from sqlalchemy import func, select

from bot.storage.models import Evidence
from tests.fakes.image_host import FakeImageHost
from tests.fakes.server import bound_socket, serve, url_of
from tests.support.images import jpeg
from tests.support.zalo import fake_oa, image_host, running_bot, zalo_settings  # noqa: F401  (fixtures)

NOT_DOWNLOADED = "Mình chưa tải được ảnh. Bạn gửi lại ảnh nhé."
RECEIVED = "Đã nhận ảnh 1."
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


class Resident:
    def __init__(self, stack, fake, user_id: str) -> None:
        self.stack, self.fake, self.user_id = stack, fake, user_id
        self.url = stack.public_url + "/zalo/oa/webhook"

    async def deliver(self, event: dict) -> str:
        before = len(self.fake.sent)
        assert (await self.fake.deliver(self.url, event)).status_code == 200
        await self.stack.oa_channel.queue.drain()
        return "\n\n".join(s.text or "" for s in self.fake.sent[before:] if s.user_id == self.user_id)

    async def says(self, text: str) -> str:
        return await self.deliver(self.fake.text_event(self.user_id, text))

    async def sends_photo(self, url: str) -> str:
        return await self.deliver(self.fake.image_event(self.user_id, url))

    async def at_the_photo_step(self) -> None:
        for text in ("xin chào", "toi dong y", "Công dân học tập", "Nguyễn Thị Hoa", "1975", "2", "1", "1", "Đạt"):
            await self.says(text)


def oa(fake, **extra) -> dict:
    _access, refresh = fake.issue_pair()
    return {**zalo_settings(oa=fake, refresh_token=refresh), **extra}


@pytest.fixture
async def elsewhere():
    """Another host on the machine (127.0.0.2), not in ZALO_MEDIA_HOSTS: it must never be reached."""
    host = FakeImageHost()
    sock = bound_socket("127.0.0.2")
    async with serve(host.app, sock):
        host.base_url = url_of(sock)
        yield host


async def test_links_to_other_hosts_and_private_addresses_are_refused_alike(
    fake_oa, image_host, elsewhere, suite_db, tmp_path, clock, caplog
):
    async with running_bot(suite_db, tmp_path, clock, **oa(fake_oa)) as stack:
        hoa = Resident(stack, fake_oa, "oa-hoa")
        await hoa.at_the_photo_step()
        caplog.set_level(logging.WARNING, logger="bot.channels.media_fetch")

        inside = elsewhere.add("real.jpg", jpeg((1, 1, 1)))  # a real photo, on a host not listed
        page = elsewhere.add("page", b"<html>an open port</html>")
        with bound_socket("127.0.0.2") as closed:  # bound, never listening: a closed port
            closed_port = f"{url_of(closed)}/img/x"
        refused = {
            "another host": inside,
            "an open port elsewhere": page,
            "a closed port elsewhere": closed_port,
            "redirect to another host": image_host.redirect("to-elsewhere", inside),
            "redirect to cloud metadata": image_host.redirect("to-metadata", METADATA),
            "redirect to the local network": image_host.redirect("to-lan", "http://10.0.0.1/x.jpg"),
            "cloud metadata": METADATA,
            "not http": "file:///etc/passwd",
        }
        image_host.redirect("loop", image_host.base_url + "/img/loop")
        refused["endless redirects"] = image_host.base_url + "/img/loop"
        answers = {what: await hoa.sends_photo(url) for what, url in refused.items()}
        # Same words for every refusal: the answer tells nothing about ports or hosts.
        assert {what: answer.split("\n")[0] for what, answer in answers.items()} == {
            what: NOT_DOWNLOADED for what in refused
        }
        assert len(set(answers.values())) == 1
        assert elsewhere.hits == {}  # not one request reached the other host
        assert image_host.hits["to-elsewhere"] == image_host.hits["to-metadata"] == image_host.hits["to-lan"] == 1
        assert image_host.hits["loop"] == 4  # the first request and 3 redirects, then it gives up
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for host in ("127.0.0.2", "169.254.169.254", "10.0.0.1"):
            assert f"host '{host}' is not in ZALO_MEDIA_HOSTS" in logged

        # Redirects between allowed hosts are followed, and the photo is taken.
        good = image_host.add("good.jpg", jpeg((2, 2, 2)))
        assert (await hoa.sends_photo(image_host.redirect("hop", good))).startswith(RECEIVED)
        async with stack.app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Evidence)) == 1


async def test_an_allowed_name_is_refused_when_it_resolves_to_a_private_address(
    fake_oa, image_host, suite_db, tmp_path, clock
):
    """A name in the list is not enough: every address it resolves to must be public. "localhost"
    stands for a platform name pointed at an internal address."""
    async with running_bot(suite_db, tmp_path, clock, **oa(fake_oa, zalo_media_hosts="localhost")) as stack:
        hoa = Resident(stack, fake_oa, "oa-hoa")
        await hoa.at_the_photo_step()
        url = image_host.add("a.jpg", jpeg()).replace("127.0.0.1", "localhost")
        assert (await hoa.sends_photo(url)).startswith(NOT_DOWNLOADED)
        assert image_host.hits == {}


def test_host_rules():
    from bot.channels.media_fetch import HostPolicy, is_public

    policy = HostPolicy(("*.zdn.vn", "zalo.me", "127.0.0.1"))
    for host in ("f1.zdn.vn", "b.f6.photo.talk.zdn.vn", "zalo.me", "127.0.0.1"):
        assert policy.allows(host), host
    for host in ("zdn.vn", "evilzdn.vn", "zdn.vn.evil.com", "x.zalo.me", "127.0.0.2", "localhost"):
        assert not policy.allows(host), host
    # What counts as the host is what the URL really names (not a user name before "@").
    assert httpx.URL("https://f1.zdn.vn@evil.com/a.jpg").host == "evil.com"
    assert policy.listed_address("127.0.0.1") and not policy.listed_address("127.0.0.2")
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ):
        assert not is_public(ipaddress.ip_address(address)), address
    for address in ("113.160.1.1", "8.8.8.8", "2001:4860:4860::8888"):
        assert is_public(ipaddress.ip_address(address)), address
