"""The package's layers, checked on the source: imports point down, and flows hold no SQL.

domain (rules as data) < storage (the database and files) < review, reminders, zalo (services)
< flows (conversations) < channels, web (the platforms) < runner, cli (start-up). A module may
import from its own layer and the ones below, never above; type-only imports (under
TYPE_CHECKING) are allowed, as they do not run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

# Lower number = lower layer. Modules at the package root are shared helpers (i18n, text,
# clock, messages, images, logs) and sit at the bottom, except those named here.
LAYERS = {
    "config": 2,  # settings, with the secret box that decrypts what they hold
    "app": 3,  # the running application's shared parts: database, criteria, evidence
    "domain": 1,
    "criteria": 1,
    "storage": 2,
    "zalo": 3,
    "review": 3,
    "reminders": 3,
    "ops": 3,
    "flows": 4,
    "channels": 5,
    "web": 5,
    "runner": 6,
    "cli": 6,
    "__main__": 6,
}
# Single modules placed below their package: the sender interface and its errors, which the
# outbox dispatcher and the ZNS sender implement or raise without knowing any platform.
MODULES = {"bot.channels.base": 3}
# Known upward edges, each with its reason. Keep this list short.
ALLOWED = {
    # The officers' /lichnhac and leaders' /nhacnho are conversations kept with the reminders.
    ("reminders", "flows"),
    # The /web command gives a sign-in link to the review desk.
    ("flows", "web"),
}


def _layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return name, MODULES.get(module, LAYERS.get(name, 0))


def _runtime_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot.") and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("bot.")]
    return found


def _modules():
    for path in sorted(BOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield "bot." + ".".join(path.relative_to(BOT).with_suffix("").parts), path


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(module, path):
    own, level = _layer_of(module)
    upward = []
    for target in _runtime_imports(path):
        other, other_level = _layer_of(target)
        if other_level > level and (own, other) not in ALLOWED:
            upward.append(target)
    assert not upward, f"{module} imports from a higher layer: {upward}"


def test_flows_build_no_sql():
    """Conversations call storage and review services; statements are built there."""
    for path in sorted((BOT / "flows").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                names = {alias.name for alias in node.names}
                assert not names & {"select", "update", "delete", "insert", "text", "func"}, (path.name, names)
