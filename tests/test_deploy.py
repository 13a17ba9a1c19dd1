"""Deployment files: the backup/restore scripts work, the unit and compose files are coherent."""

from __future__ import annotations

import configparser
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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
