"""Assembling every flow's states and commands into the one router the engine runs, checked."""

from __future__ import annotations

from bot.flows import (
    consent,
    declare,
    escape,
    invite,
    leader,
    mydata,
    province,
    register,
    reports,
    staff,
    start,
    states,
    status,
    webdesk,
    zns_phone,
)
from bot.flows.router import Router
from bot.reminders import commands as reminder_commands

FLOWS = (
    start,
    escape,
    register,
    declare,
    status,
    staff,
    leader,
    invite,
    reports,
    province,
    mydata,
    consent,
    reminder_commands,
    zns_phone,
    webdesk,
)


def build_router() -> Router:
    """Every flow's router in one, after checking the graph (see `Router.check`): a misspelt state
    or command fails here, at start, not when someone reaches it."""
    router = Router()
    for module in FLOWS:
        router.include(module.router)
    router.check(states.ALL)
    return router
