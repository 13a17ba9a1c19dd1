"""Channel-neutral conversations. `ROUTER` assembles every flow's states and commands."""

from bot.flows import declare, register, start, status
from bot.flows.router import Router
from bot.reminders import commands as reminder_commands

ROUTER = Router()
for _module in (start, register, declare, status, reminder_commands):
    ROUTER.include(_module.router)
