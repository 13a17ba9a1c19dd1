"""The `hoctap` command as an operator runs it (a real subprocess, a real SQLite file)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE_COMMUNE, TEST_TOKEN_KEY
from tests.support.processes import bot_env

# Real `hoctap` subprocesses: in the full run (./dev.sh test --full), not the fast pass.
pytestmark = pytest.mark.slow


def hoctap(
    tmp_path, *args: str, input: str | None = None, timeout: float = 120, **extra_env: str
) -> subprocess.CompletedProcess:
    env = bot_env(tmp_path, "cli.db", **extra_env)
    command = [sys.executable, "-m", "bot", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, input=input, capture_output=True, text=True, timeout=timeout)


def grant(
    tmp_path, role: str, channel: str, user_id: str, scope: str, name: str | None = None
) -> subprocess.CompletedProcess:
    """`hoctap admin grant …` with the usual flags (`--name` only when given)."""
    args = ["--role", role, "--channel", channel, "--user-id", user_id, "--scope", scope]
    return hoctap(tmp_path, "admin", "grant", *args, *(["--name", name] if name is not None else []))


def test_init_grant_and_roles(tmp_path):
    done = hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE))
    assert done.returncode == 0, done.stderr
    assert "Xã Ea Tul: 5 branches, 2 campaign(s) ready." in done.stdout

    refused = grant(tmp_path, "officer", "telegram", "42", "ea-tul")
    assert refused.returncode == 2 and "pass --name" in refused.stderr

    granted = grant(tmp_path, "officer", "telegram", "42", "ea-tul", "Trần Văn Cán")
    assert granted.returncode == 0, granted.stderr
    assert "granted officer to Trần Văn Cán" in granted.stdout

    wrong_scope = grant(tmp_path, "leader", "telegram", "42", "ea-tul")
    assert wrong_scope.returncode == 2 and "leader needs a branch" in wrong_scope.stderr

    roles = hoctap(tmp_path, "admin", "roles")
    assert "officer  Trần Văn Cán" in roles.stdout and "ea-tul" in roles.stdout


def test_bad_commune_file_exits_with_a_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("commune: {code: X, name: ''}\nbranches: []\n", encoding="utf-8")
    done = hoctap(tmp_path, "init", "--commune", str(bad))
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr and "branches" in done.stderr


def test_run_without_tokens_opens_the_terminal_chat(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    done = hoctap(tmp_path, "run", input="xin chào\n1\n")
    assert done.returncode == 0, done.stderr
    assert "Trò chuyện với hoctap-bot" in done.stdout
    assert "1. Tôi đồng ý" in done.stdout
    assert "Bạn muốn đăng ký danh hiệu nào năm" in done.stdout


def test_run_refuses_a_public_address_with_the_placeholder_signing_secret(tmp_path):
    """Evidence links are signed with SIGNING_SECRET: a guessable one on a public address would let
    anyone fetch residents' photos, so the bot will not start and says what to set."""
    for secret in ("change-me-in-production", "CHANGE-ME", "short"):
        done = hoctap(
            tmp_path, "run", "--role", "web", PUBLIC_BASE_URL="https://hoctap.example.vn", SIGNING_SECRET=secret
        )
        assert done.returncode == 2, (secret, done.stderr)
        assert "SIGNING_SECRET" in done.stderr and "Traceback" not in done.stderr


def test_run_refuses_the_placeholder_secret_whenever_webhooks_or_files_are_served(tmp_path):
    """Not only for https: any PUBLIC_BASE_URL (links are made for it, a Zalo Bot webhook secret
    would be derived from the secret), with stray spaces, and a web worker with no public URL at
    all that still serves a webhook and /files."""
    for url in ("http://127.0.0.1:8110", " https://hoctap.example.vn "):
        done = hoctap(
            tmp_path,
            "run",
            "--role",
            "web",
            timeout=60,
            PUBLIC_BASE_URL=url,
            ZALO_BOT_TOKEN="1459232241:not-a-real-token",
        )
        assert done.returncode == 2, (url, done.stderr)
        assert "SIGNING_SECRET" in done.stderr and "Traceback" not in done.stderr
    oa = dict(
        ZALO_OA_APP_ID="4321",
        ZALO_OA_SECRET_KEY="oa-secret",
        ZALO_OA_ACCESS_TOKEN="AT-1",
        TOKEN_ENCRYPTION_KEY=TEST_TOKEN_KEY,
    )
    done = hoctap(tmp_path, "run", "--role", "web", timeout=60, PUBLIC_BASE_URL="  ", **oa)
    assert done.returncode == 2, done.stderr
    assert "SIGNING_SECRET" in done.stderr and "web app" in done.stderr and "Traceback" not in done.stderr
    # Something that is not an address at all is named, not half-used.
    done = hoctap(
        tmp_path, "run", "--role", "web", timeout=60, PUBLIC_BASE_URL="hoctap.example.vn", SIGNING_SECRET="x" * 32
    )
    assert done.returncode == 2 and "PUBLIC_BASE_URL" in done.stderr and "Traceback" not in done.stderr


def test_run_names_a_bad_role_and_a_bad_channel_setting(tmp_path):
    done = hoctap(tmp_path, "run", "--role", "worker")
    assert done.returncode == 2 and "--role" in done.stderr
    # A public webhook address without TELEGRAM_WEBHOOK_SECRET: refused with the setting named.
    done = hoctap(
        tmp_path,
        "run",
        "--role",
        "web",
        PUBLIC_BASE_URL="https://hoctap.example.vn",
        SIGNING_SECRET="x" * 32,
        TELEGRAM_BOT_TOKEN="123:TEST",
    )
    assert done.returncode == 2, done.stderr
    assert "TELEGRAM_WEBHOOK_SECRET" in done.stderr and "Traceback" not in done.stderr


def test_init_says_what_it_changes_and_if_new_keeps_a_changed_calendar(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        EXAMPLE_COMMUNE.read_text(encoding="utf-8").replace(
            "self_declaration: 2026-11-30", "self_declaration: 2026-12-02"
        ),
        encoding="utf-8",
    )
    # As ./dev.sh run does at every start: the commune exists, so nothing is re-applied.
    kept = hoctap(tmp_path, "init", "--if-new", "--commune", str(changed))
    assert kept.returncode == 0 and "already set up; the calendar is kept" in kept.stdout
    applied = hoctap(tmp_path, "init", "--commune", str(changed))
    assert "changed: ea-tul 2026: self_declaration 2026-11-30 -> 2026-12-02" in applied.stdout
    assert "./dev.sh" not in applied.stdout


def test_admin_channel_check_revoke_and_export_refusals(tmp_path):
    assert hoctap(tmp_path, "init", "--commune", str(EXAMPLE_COMMUNE)).returncode == 0
    viber = grant(tmp_path, "leader", "viber", "x1", "buon-ken", "Thử")
    assert viber.returncode == 2 and "unknown channel 'viber'" in viber.stderr
    assert "Thử" not in hoctap(tmp_path, "admin", "roles").stdout
    granted = grant(tmp_path, "leader", "telegram", "7", "buon-ken", "Ama Hồng")
    assert granted.returncode == 0, granted.stderr
    revoked = hoctap(tmp_path, "admin", "revoke", "--role", "leader", "--channel", "telegram", "--user-id", "7")
    assert revoked.returncode == 0 and "revoked 1 leader grant(s)" in revoked.stdout
    assert "Ama Hồng" not in hoctap(tmp_path, "admin", "roles").stdout
    again = hoctap(tmp_path, "admin", "revoke", "--role", "leader", "--channel", "telegram", "--user-id", "7")
    assert again.returncode == 2 and "holds no live leader role" in again.stderr

    no_year = hoctap(tmp_path, "export", "stats", "--commune", "ea-tul", "--year", "2030")
    assert no_year.returncode == 2 and "has no campaign for 2030 (campaigns: 2026, 2027)" in no_year.stderr
    french = hoctap(tmp_path, "export", "stats", "--commune", "ea-tul", "--lang", "fr")
    assert french.returncode == 2 and "--lang must be vi or en" in french.stderr
    mismatch = hoctap(tmp_path, "export", "stats", "-f", "csv", "--out", "x.xlsx", "--commune", "ea-tul")
    assert mismatch.returncode == 2 and "does not end in .csv" in mismatch.stderr and not (tmp_path / "x.xlsx").exists()
    done = hoctap(tmp_path, "export", "stats", "--commune", "ea-tul")
    assert done.returncode == 0 and f"database: {tmp_path / 'cli.db'}" in done.stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = hoctap(elsewhere, "export", "stats", "--commune", "ea-tul")  # its ./cli.db does not exist
    assert lost.returncode == 2 and f"no database at {elsewhere / 'cli.db'}" in lost.stderr
    assert not (elsewhere / "cli.db").exists()


def test_init_a_whole_province_then_its_reader_and_the_upward_report(tmp_path):
    province_file = EXAMPLE_COMMUNE.with_name("province.yaml")
    done = hoctap(tmp_path, "init", "--province", str(province_file))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("changed:")] == [
        "changed: ea-tul 2026: new campaign",
        "changed: hoa-phu 2026: new campaign",
        "changed: ea-kiet 2026: new campaign",
    ]
    assert [line for line in lines if not line.startswith("changed:")] == [
        "Xã Ea Tul: 2 branches, 1 campaign(s) ready.",
        "Xã Hòa Phú: 2 branches, 1 campaign(s) ready.",
        "Xã Ea Kiết: 2 branches, 1 campaign(s) ready.",
    ]
    both = hoctap(tmp_path, "init", "--province", str(province_file), "--commune", str(EXAMPLE_COMMUNE))
    assert both.returncode == 2 and "--commune FILE or --province FILE" in both.stderr
    granted = grant(tmp_path, "province", "telegram", "7", "dak-lak", "Phạm Thị Tỉnh")
    assert granted.returncode == 0, granted.stderr
    report = hoctap(tmp_path, "province-report", "--province", "dak-lak", "--year", "2026", "--format", "csv")
    assert report.returncode == 0, report.stderr
    assert "wrote 3 communes and the province totals to province-dak-lak-2026.csv" in report.stdout
    lines = (tmp_path / "province-dak-lak-2026.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 5 and lines[-1].startswith(",Toàn tỉnh (Tỉnh Đắk Lắk),5580,13970")
