"""Annual reminders to Zalo OA followers, whatever their last message: within the free window
by the OA, beyond it by ZNS (a template, to the phone number given for it), otherwise the branch
leader's "needs a visit" list. Over real HTTP against the fake OA and the fake ZNS."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.domain.lifecycle import State
from bot.reminders.digests import WEEKLY, build_digest, digest_spec
from bot.reminders.dispatch import Dispatcher
from bot.reminders.rounds import Rounds
from bot.reminders.zalo_lines import zalo_blocks
from bot.storage.models import ChannelAccount, OrgUnit
from bot.storage.outbox import Notice, render_notice
from bot.storage.people import get_or_create_account
from tests.fakes.zalo_zns import Template
from tests.support.reminders import VirtualTimer, campaign, outbox, resident, submission, vn
from tests.support.zalo import fake_oa, fake_zns, running_bot, zalo_settings  # noqa: F401  (fixtures)

TEMPLATE = "246810"
ZNS = {"*": {"template_id": TEMPLATE, "params": {"ten": "name", "han": "due_date", "ma_ho_so": "reference"}}}


async def _follower(app, fake_oa, name: str, user_id: str, days_ago: float, phone: str | None = None):
    """A resident on the OA who last wrote `days_ago` days ago (and maybe gave a phone number)."""
    person = await resident(app, name, external_id=user_id, channel="zalo_oa")
    await submission(app, person, State.DECLARING, answered=2)
    last = app.clock.now() - timedelta(days=days_ago)
    async with app.sessions.begin() as session:
        await session.execute(
            update(ChannelAccount).where(ChannelAccount.external_id == user_id).values(last_inbound_at=last)
        )
        if phone:
            account = await get_or_create_account(session, "zns", f"phone:{phone}", None, app.clock.now())
            account.person_id, account.consent_at = person.id, app.clock.now()
    fake_oa.interacted(user_id, last.timestamp())
    return person


async def test_a_reminder_round_reaches_each_person_once_by_the_right_route(
    fake_oa, fake_zns, suite_db, tmp_path, clock
):
    clock.set(vn(2026, 11, 23, 8, 0))  # the 7-days-before round of the self-assessment deadline
    fake_zns.templates[TEMPLATE] = Template(("ten", "han", "ma_ho_so"))
    _access, refresh = fake_oa.issue_pair()
    settings = dict(
        zalo_settings(oa=fake_oa, refresh_token=refresh),
        zalo_zns_templates=ZNS,
        zalo_zns_api_base_url=fake_zns.base_url,
        zalo_zns_cost_vnd=300,
    )
    async with running_bot(suite_db, tmp_path, clock, role="web", **settings) as stack:
        app = stack.app
        await _follower(app, fake_oa, "Nguyễn Văn An", "oa-an", 1)  # free window: the OA
        await _follower(app, fake_oa, "Trần Thị Bình", "oa-binh", 3, phone="84912345678")  # ZNS by phone
        await _follower(app, fake_oa, "Lê Văn Chi", "oa-chi", 3)  # no phone: a visit
        await _follower(app, fake_oa, "Phạm Thị Dung", "oa-dung", 30, phone="84987654321")  # ZNS by phone
        await _follower(app, fake_oa, "Y Em", "oa-em", 30)  # no phone: a visit
        camp = await campaign(app)

        first = await Rounds(app).run_round(camp.id, "self_declaration", 7)
        again = await Rounds(app).run_round(camp.id, "self_declaration", 7)  # run twice: nothing new
        assert (first.planned, first.queued, first.unreachable) == (5, 3, 2)
        assert (again.planned, again.queued) == (5, 0)

        dispatcher = Dispatcher(app, stack.runtime.senders, worker_id="w1", timer=VirtualTimer(app.clock))
        await dispatcher.run_once()
        await dispatcher.run_once()
        rows = await outbox(app)
        assert [r.status for r in rows] == ["sent", "sent", "sent"]

        assert [s.user_id for s in fake_oa.sent] == ["oa-an"] and fake_oa.billed == []
        assert fake_oa.sent[0].text.startswith("Chào Nguyễn Văn An! Hạn tự đánh giá: ngày 30/11/2026 (còn 7 ngày).")
        assert sorted((s.route, s.to) for s in fake_zns.sent) == [("phone", "84912345678"), ("phone", "84987654321")]
        binh = next(s for s in fake_zns.sent if s.to == "84912345678")
        assert binh.data == {"ten": "Trần Thị Bình", "han": "30/11/2026", "ma_ho_so": "CD-2026-000002"}
        assert fake_zns.spent == 600

        # The leader of the branch sees the two nobody can reach, to visit them.
        async with app.sessions() as session:
            branch = await session.scalar(select(OrgUnit).where(OrgUnit.code == "thon-ha-luong"))
            spec = digest_spec("leader", branch.id, camp.id, WEEKLY).spec
            digest = await build_digest(session, spec, catalog=app.catalog, settings=app.settings, at=clock.now())
            blocks = await zalo_blocks(session, camp, app.settings, clock.now())
        text = render_notice(digest, "vi").text
        away = next(line for line in text.splitlines() if line.startswith("Không nhắn được qua chat"))
        assert away == (
            "Không nhắn được qua chat, cần đến tận nhà (2): Lê Văn Chi (lâu rồi chưa nhắn Zalo OA, bot không nhắn "
            "lại được), Y Em (lâu rồi chưa nhắn Zalo OA, bot không nhắn lại được)"
        )
        # The officer's digest counts this month's ZNS messages and what they cost.
        spend = render_notice(
            Notice(blocks[-1]["key"], blocks[-1]["params"], plural=blocks[-1]["plural"], count=blocks[-1]["count"]),
            "vi",
        ).text
        assert spend == "Tin ZNS tháng 11/2026: 2 tin, khoảng 600 đồng."


async def test_zns_by_user_id_in_development_mode_and_zalo_refusals(fake_oa, fake_zns, suite_db, tmp_path, clock):
    """ZALO_ZNS_BY_UID: a follower silent for 30 days gets the template by their OA user id; in
    "development" mode only the OA's admins receive it; opt-out (-141) makes the person need a
    visit; ZNS is never sent at night (-133)."""
    from bot.channels.base import RateLimited

    clock.set(vn(2026, 11, 23, 8, 0))
    fake_zns.templates[TEMPLATE] = Template(("ten", "han", "ma_ho_so"), uid_allowed=True)
    fake_zns.admins.add("oa-giang")
    _access, refresh = fake_oa.issue_pair()
    settings = dict(
        zalo_settings(oa=fake_oa, refresh_token=refresh),
        zalo_zns_templates=ZNS,
        zalo_zns_api_base_url=fake_zns.base_url,
        zalo_zns_by_uid=True,
        zalo_zns_mode="development",
    )
    async with running_bot(suite_db, tmp_path, clock, role="web", **settings) as stack:
        app = stack.app
        await _follower(app, fake_oa, "Hà Văn Giang", "oa-giang", 30)
        await _follower(app, fake_oa, "Đỗ Thị Hạnh", "oa-hanh", 30)
        camp = await campaign(app)
        result = await Rounds(app).run_round(camp.id, "self_declaration", 7)
        assert (result.queued, result.unreachable) == (2, 0)
        fake_zns.opted_out.add("oa-hanh")
        await Dispatcher(app, stack.runtime.senders, worker_id="w1", timer=VirtualTimer(app.clock)).run_once()
        assert [(s.route, s.to, s.mode, s.price) for s in fake_zns.sent] == [("uid", "oa-giang", "development", 0)]
        statuses = {r.dedupe_key.split(":")[1]: (r.status, r.last_error) for r in await outbox(app)}
        assert sorted(statuses.values()) == [("sent", None), ("unreachable", "zns_opt_out")]

        zns = stack.runtime.senders.get("zns")
        async with app.sessions() as session:
            account = await session.scalar(select(ChannelAccount).where(ChannelAccount.external_id == "uid:oa-giang"))
        clock.set(vn(2026, 11, 23, 22, 30))
        try:
            await zns.send_queued(account, None, Notice("remind.declare", {"name": "Hà Văn Giang"}))
        except RateLimited as waiting:
            assert 7 * 3600 < waiting.retry_after <= 7.5 * 3600  # until 06:00
        else:
            raise AssertionError("sent at night")
        assert len(fake_zns.sent) == 1


async def test_giving_a_phone_number_for_zns_is_optional_with_its_own_consent(suite_db, tmp_path, clock):
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router
    from bot.storage.models import Consent
    from tests.conftest import make_app
    from tests.support.chat import Person

    app = await make_app(
        suite_db, tmp_path, clock, zalo_oa_app_id="4321", zalo_zns_templates=ZNS, zalo_zns_ask_phone=True
    )
    try:
        await resident(app, "Nguyễn Thị Hoa", external_id="hoa")
        hoa = Person(FlowEngine(app, build_router()), "hoa")
        turn = await hoa.command("sodienthoai")
        assert "hội có thể gửi tin nhắc hạn của Zalo (ZNS) tới số đó" in turn.text
        assert turn.choices == ["Đồng ý, cho số", "Bỏ qua"]
        turn = await hoa.taps("Bỏ qua")  # skippable: nothing is kept
        assert "Không sao, bot không lưu số điện thoại nào." in turn.text

        await hoa.command("sodienthoai")
        await hoa.taps("Đồng ý, cho số")
        turn = await hoa.says("12345")
        assert "Số này chưa đúng." in turn.text
        turn = await hoa.says("0912 345 678")
        assert "Đã lưu số có đuôi 678." in turn.text
        async with app.sessions() as session:
            (zns,) = (await session.scalars(select(ChannelAccount).where(ChannelAccount.channel == "zns"))).all()
            consent = await session.scalar(select(Consent).where(Consent.account_id == zns.id))
        assert zns.external_id == "phone:84912345678" and zns.consent_at is not None
        assert consent.purposes == ["zns_reminders"] and consent.text_version == "zns-phone-1" and consent.text_sha256

        turn = await hoa.command("sodienthoai")
        assert "Bạn đã cho số điện thoại có đuôi 678." in turn.text
        await hoa.taps("Bỏ qua")
        await hoa.command("sodienthoai")
        turn = await hoa.taps("Xoá số đã cho")
        assert "Đã xoá số điện thoại của bạn." in turn.text
        async with app.sessions() as session:
            assert (await session.scalars(select(ChannelAccount).where(ChannelAccount.channel == "zns"))).all() == []

        # Deleting one's data takes the number too.
        await hoa.command("sodienthoai")
        await hoa.taps("Đồng ý, cho số")
        await hoa.says("0987654321")
        from bot.review.privacy import delete_person_data
        from bot.storage.models import Person as PersonRow

        async with app.sessions.begin() as session:
            row = await session.scalar(select(PersonRow).where(PersonRow.full_name == "Nguyễn Thị Hoa"))
            await delete_person_data(session, row, clock.now())
        async with app.sessions() as session:
            (zns,) = (await session.scalars(select(ChannelAccount).where(ChannelAccount.channel == "zns"))).all()
        assert "987654321" not in zns.external_id and zns.person_id is None
    finally:
        await app.close()


async def test_the_phone_number_is_offered_once_registered_where_the_commune_asks_for_it(suite_db, tmp_path, clock):
    from bot.flows.engine import FlowEngine
    from bot.flows.registry import build_router
    from tests.conftest import make_app
    from tests.support.chat import Person
    from tests.support.scripts import register_citizen

    offer = "bạn có thể cho số điện thoại: gõ /sodienthoai (không bắt buộc)."
    app = await make_app(
        suite_db, tmp_path, clock, zalo_oa_app_id="4321", zalo_zns_templates=ZNS, zalo_zns_ask_phone=True
    )
    try:
        hoa = Person(FlowEngine(app, build_router()), "hoa")
        await register_citizen(hoa)
        assert offer in hoa.last.text
        turn = await hoa.command("sodienthoai")  # and it works from there
        assert turn.choices == ["Đồng ý, cho số", "Bỏ qua"]
    finally:
        await app.close()
    # Where the commune does not ask for numbers, nothing is said.
    plain = await make_app(suite_db, tmp_path / "plain", clock, zalo_oa_app_id="4321", zalo_zns_templates=ZNS)
    try:
        nam = Person(FlowEngine(plain, build_router()), "nam")
        await register_citizen(nam, name="Y Nam")
        assert "Đã đăng ký" in nam.last.text and "/sodienthoai" not in nam.last.text
    finally:
        await plain.close()
