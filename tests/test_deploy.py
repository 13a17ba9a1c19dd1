"""Deployment files: the backup/restore scripts work, the unit and compose files are coherent."""

from __future__ import annotations

import configparser
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "hoctap"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot "$@"\n')
    shim.chmod(0o755)
    return {
        **os.environ,
        "HOCTAP": str(shim),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
        "EVIDENCE_DIR": str(tmp_path / "evidence"),
    }


@pytest.mark.slow
def test_backup_script_keeps_the_newest_and_restore_script_brings_data_back(tmp_path):
    env = _env(tmp_path)
    run = lambda *args, **extra: subprocess.run(  # noqa: E731
        list(args), env={**env, **extra}, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run(env["HOCTAP"], "init", "--commune", str(ROOT / "examples" / "commune.yaml")).returncode == 0
    (tmp_path / "evidence" / "ab").mkdir(parents=True)
    (tmp_path / "evidence" / "ab" / "photo.jpg").write_bytes(b"\xff\xd8 photo")
    backups = tmp_path / "backups"
    for _ in range(3):
        done = run(str(DEPLOY / "backup.sh"), str(backups), KEEP="2")
        assert done.returncode == 0, done.stderr
        time.sleep(1.05)  # folder names have one-second resolution
    kept = sorted(p.name for p in backups.iterdir())
    assert len(kept) == 2
    (tmp_path / "live.db").unlink()
    (tmp_path / "evidence" / "ab" / "photo.jpg").unlink()
    done = run(str(DEPLOY / "restore.sh"), str(backups / kept[-1]))
    assert done.returncode == 0, done.stderr
    names = {r[0] for r in sqlite3.connect(tmp_path / "live.db").execute("SELECT code FROM org_units")}
    assert {"ea-tul", "buon-ken"} <= names
    assert (tmp_path / "evidence" / "ab" / "photo.jpg").read_bytes() == b"\xff\xd8 photo"


def test_systemd_units_run_the_right_roles():
    def unit(name: str) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(DEPLOY / "systemd" / name)
        return parser

    web = unit("hoctap-web@.service")
    assert web["Service"]["ExecStart"].endswith("hoctap run --role web")
    assert "Environment=WEB_PORT=%i" in (DEPLOY / "systemd" / "hoctap-web@.service").read_text()
    assert unit("hoctap-scheduler.service")["Service"]["ExecStart"].endswith("hoctap run --role scheduler")
    assert unit("hoctap-backup.timer")["Timer"]["OnCalendar"].endswith("Asia/Ho_Chi_Minh")
    assert "deploy/backup.sh" in unit("hoctap-backup.service")["Service"]["ExecStart"]


def test_compose_file_runs_database_web_workers_and_one_scheduler():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "web1", "web2", "scheduler"}
    assert services["scheduler"]["command"] == ["hoctap", "run", "--role", "scheduler"]
    for name in ("web1", "web2"):
        assert services[name]["command"] == ["hoctap", "run", "--role", "web"]
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
    assert (DEPLOY / services["web1"]["build"]["context"] / services["web1"]["build"]["dockerfile"]).is_file()


def test_env_example_documents_every_setting():
    from bot.config import Settings

    text = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    names = {field.alias for field in Settings.model_fields.values()}
    missing = sorted(name for name in names if f"{name}=" not in text)
    assert missing == []
    # Every name written there is a real setting (no stale leftovers).
    import re

    written = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))
    assert written - names == set()


def test_env_example_values_parse(tmp_path):
    """The file as shipped, and with every commented default switched on, is accepted."""
    from bot.config import Settings

    text = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    shipped = Settings(_env_file=DEPLOY / ".env.example")
    assert shipped.database_url.startswith("postgresql+asyncpg://")
    everything = tmp_path / "all.env"
    everything.write_text(
        "\n".join(
            line[2:] if line.startswith("# ") and "=" in line.split(" ")[1] else line for line in text.splitlines()
        ),
        encoding="utf-8",
    )
    full = Settings(_env_file=everything)
    assert full.channel_limit("telegram").rate == 25
    assert str(full.reminder_time) == "08:00:00" and full.zalo_oa_window_days == 7


def test_nginx_site_routes_exactly_the_web_apps_paths():
    """The proxied paths are the ones the workers serve (webhooks from the settings' defaults)."""
    import re

    from bot.channels.telegram import WEBHOOK_PATH
    from bot.config import Settings

    text = (DEPLOY / "nginx" / "hoctap.conf").read_text(encoding="utf-8")
    settings = Settings()
    for path in (WEBHOOK_PATH, settings.zalo_bot_webhook_path, settings.zalo_oa_webhook_path):
        assert re.search(rf"location = {re.escape(path)}\s+\{{.*proxy_pass http://hoctap_web;", text)
    assert "location /files/" in text and "location = /healthz" in text
    assert "client_max_body_size 1m;" in text and "ssl_certificate " in text
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", text) == ["8081", "8082"]


@pytest.mark.slow
def test_nginx_accepts_the_site(tmp_path):
    """`nginx -t` on the site with a throwaway certificate (where nginx is installed)."""
    import shutil

    import pytest

    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).exists() or openssl is None:
        pytest.skip("nginx or openssl not installed")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(tmp_path / "c.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=hoctap.example.vn",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = (DEPLOY / "nginx" / "hoctap.conf").read_text(encoding="utf-8")
    site = site.replace("/etc/letsencrypt/live/hoctap.example.vn/fullchain.pem", str(tmp_path / "c.pem"))
    site = site.replace("/etc/letsencrypt/live/hoctap.example.vn/privkey.pem", str(tmp_path / "k.pem"))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(f"events {{}}\nhttp {{ include {tmp_path / 'site.conf'}; }}\n")
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
