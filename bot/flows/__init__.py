"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import consent, declare, invite, leader, mydata, province, register, reports, staff, start, status
from bot.flows.router import Router
from bot.reminders import commands as reminder_commands

ROUTER = Router()
for _module in (start, register, declare, status, staff, leader, invite, reports, province, mydata, consent, reminder_commands):
    ROUTER.include(_module.router)
