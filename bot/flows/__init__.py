"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import consent, declare, invite, leader, mydata, register, reports, staff, start, status, webdesk
from bot.flows.router import Router
from bot.reminders import commands as reminder_commands

ROUTER = Router()
for _module in (start, register, declare, status, staff, leader, invite, reports, mydata, consent, reminder_commands, webdesk):
    ROUTER.include(_module.router)
