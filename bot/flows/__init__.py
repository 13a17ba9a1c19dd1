"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import declare, register, start, status
from bot.flows.router import Router

ROUTER = Router()
for _module in (start, register, declare, status):
    ROUTER.include(_module.router)
