"""The conversation graph is checked when the router is built: a misspelt state or command fails
at start (and here), not when someone reaches it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.domain.roles import Role
from bot.flows import states
from bot.flows.context import Context, Input
from bot.flows.registry import build_router
from bot.flows.router import Router
from bot.flows.states import States
from bot.messages import DECLARED_COMMAND_ACTIONS, command_action

FLOWS = Path(__file__).resolve().parents[1] / "bot" / "flows"


def test_the_assembled_router_is_whole() -> None:
    router = build_router()
    declared = {name for group in states.ALL for name in group.names()}
    assert set(router.states) == declared
    assert all(spec.prompt is not None for spec in router.states.values())


def test_flows_name_states_only_through_the_constants() -> None:
    literal = re.compile(r"""\b(goto|prompt|handle)\(\s*["']""")
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(FLOWS.glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == []


class Toy(States):
    START = "toy.start"
    NEXT = "toy.nxet"  # misspelt: the prompt below is registered as "toy.next"


def _toy_router() -> Router:
    router = Router()

    @router.prompt(Toy.START)
    async def ask_start(ctx: Context) -> None:
        ctx.ask("?")

    @router.handle(Toy.START)
    async def on_start(ctx: Context, inp: Input) -> None:
        ctx.goto(Toy.NEXT)

    @router.prompt("toy.next")
    async def ask_next(ctx: Context) -> None:
        ctx.ask("!")

    return router


def test_a_misspelt_goto_target_fails_when_the_router_is_built() -> None:
    with pytest.raises(ValueError) as failure:
        _toy_router().check([Toy])
    assert "'toy.nxet' has no prompt" in str(failure.value)
    assert "'toy.next' is not declared" in str(failure.value)


def test_a_handler_without_a_prompt_fails_when_the_router_is_built() -> None:
    router = Router()

    @router.handle("toy.orphan")
    async def on_orphan(ctx: Context, inp: Input) -> None:
        ctx.again()

    with pytest.raises(ValueError, match="'toy.orphan' has no prompt"):
        router.check()


def test_a_button_for_a_command_that_does_not_exist_fails_when_the_router_is_built() -> None:
    value = command_action("duyett")  # misspelt /duyet
    try:
        assert value == "cmd:duyett"
        with pytest.raises(ValueError, match="runs /duyett"):
            build_router()
    finally:
        DECLARED_COMMAND_ACTIONS.discard("duyett")
    build_router()


def test_command_roles_are_roles() -> None:
    router = build_router()
    assert router.commands["xem"].roles == (Role.LEADER, Role.OFFICER)
    for spec in router.command_order:
        assert isinstance(spec.roles, tuple) and all(isinstance(role, Role) for role in spec.roles)
