"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import consent, declare, escape, invite, leader, mydata, register, reports, staff, start, status
from bot.flows.router import Router
from bot.reminders import commands as reminder_commands

ROUTER = Router()
for _module in (start, escape, register, declare, status, staff, leader, invite, reports, mydata, consent, reminder_commands):
    ROUTER.include(_module.router)
