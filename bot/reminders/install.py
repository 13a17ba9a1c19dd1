"""Plugging reminders into `hoctap run` (--role scheduler|all): the scheduler and the dispatcher."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runner import Runtime

log = logging.getLogger(__name__)


async def install(runtime: Runtime) -> bool:
    """Add the reminder scheduler and the outbox dispatcher to the runtime's services.

    With --role all and no channel configured the terminal chat runs instead: there is nobody to
    send reminders to, so nothing is installed.
    """
    from bot.ops.leader import ElectedServices, lock_for
    from bot.reminders.dispatch import Dispatcher, DispatcherService
    from bot.reminders.schedule import ReminderScheduler

    if runtime.role == "all" and not runtime.senders.channels():
        log.info("reminders: no channel to send through; scheduler and dispatcher not started")
        return False
    scheduler = ReminderScheduler(runtime.app)
    dispatcher = Dispatcher(runtime.app, runtime.senders)
    # One active scheduler and dispatcher per installation, however many processes run with
    # --role scheduler|all: a database lock elects one, another takes over when it dies.
    settings = runtime.app.settings
    lock = lock_for(runtime.app.engine, settings.database_url)
    runtime.services.append(
        ElectedServices(lock, [scheduler, DispatcherService(dispatcher)], settings.scheduler_election_seconds)
    )
    runtime.app.extras["reminders"] = scheduler
    runtime.app.extras["dispatcher"] = dispatcher
    return True
