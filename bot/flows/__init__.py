"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import declare, invite, leader, mydata, register, reports, staff, start, status
from bot.flows.router import Router

ROUTER = Router()
for _module in (start, register, declare, status, staff, leader, invite, reports, mydata):
    ROUTER.include(_module.router)
