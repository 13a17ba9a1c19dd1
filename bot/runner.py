"""Start whatever this installation is configured for.

Each channel module offers `install(runtime) -> bool`: when its settings are present it registers
its sender, webhook routes and long-running services (pollers, dispatchers) and returns True.
With no channel configured, the terminal chat runs instead.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.routing import BaseRoute

from bot.app import App, build_app
from bot.channels.base import SenderRegistry
from bot.config import Settings
from bot.flows.engine import FlowEngine
from bot.flows.registry import build_router

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    app: App
    engine: FlowEngine
    role: str
    senders: SenderRegistry = field(default_factory=SenderRegistry)
    routes: list[BaseRoute] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    # Set once the web app accepts connections: what must reach it from outside (a platform
    # verifying a webhook) waits for this, as services start before the server.
    listening: asyncio.Event = field(default_factory=asyncio.Event)


Installer = Callable[[Runtime], Awaitable[bool]]


def channel_installers() -> list[Installer]:
    """Channels in the order they are tried; each decides from settings whether it runs."""
    from bot.channels import telegram, zalo_bot, zalo_oa

    return [telegram.install, zalo_bot.install, zalo_oa.install]


def background_installers() -> list[Installer]:
    """Scheduler-side parts (reminders, digests) for --role scheduler|all."""
    from bot.reminders.install import install as reminders

    return [reminders]


async def build_runtime(app: App, role: str) -> tuple[Runtime, bool]:
    runtime = Runtime(app, FlowEngine(app, build_router()), role)
    app.extras["senders"] = runtime.senders
    any_channel = False
    for install in channel_installers():
        any_channel = await install(runtime) or any_channel
    if role in ("scheduler", "all"):
        for install in background_installers():
            await install(runtime)
    return runtime, any_channel


async def _serve(runtime: Runtime) -> None:
    import uvicorn

    from bot.web.app import create_web_app

    settings = runtime.app.settings
    web = create_web_app(runtime.app, runtime.routes)
    server = uvicorn.Server(uvicorn.Config(web, host=settings.web_host, port=settings.web_port, log_level="info"))
    # uvicorn raises the signal that stopped it again once it has shut down, with the handlers it
    # found in place: with the default ones the process would die before the services (channels,
    # dispatchers) are stopped. Handlers of our own make that signal harmless.
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda *_: None)
        except ValueError:  # not the main thread: uvicorn does not touch signals either
            pass

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        runtime.listening.set()

    watcher = asyncio.get_running_loop().create_task(announce())
    try:
        await server.serve()
    finally:
        watcher.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_event() -> asyncio.Event:
    """Set on SIGINT/SIGTERM; installed before anything starts, so an early signal is not fatal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


def serves_web(runtime: Runtime) -> bool:
    """Whether this process serves the web app (webhooks, /healthz, /files)."""
    return bool(runtime.routes) and runtime.role in ("web", "all")


# Allocations (net of frees) between two young-generation collections; Python's default is 700.
YOUNG_COLLECTION_EVERY = 10_000


def settle_long_lived_objects() -> None:
    """Once the process has started: move what it keeps for its whole life (criteria, catalogs,
    the router, SQLAlchemy's mappings and caches, the channels) out of the garbage collector's
    way. Python's full collections otherwise walk all of it again and again while people wait:
    measured in bench/telegram_throughput.py, a few full collections took 400 ms in all, the
    longest 125 ms, each a pause for every conversation in flight.

    Young collections are made rarer too: a message allocates thousands of short-lived objects
    (ORM rows, Telegram objects), so at the default threshold a collection ran every third
    message, and in all they cost about 130 µs of CPU per message; at 10 000, 40–65 µs
    (bench/README.md, issue 18, fifth round). What they free is the same, a little later."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


async def run_bot(settings: Settings, role: str = "all", console_user: str = "local") -> None:
    if role not in ("web", "scheduler", "all"):
        raise ValueError("role must be web, scheduler or all")
    from bot.logs import install_redaction

    install_redaction(settings)
    settings.check_public_serving()
    app = await build_app(settings)
    try:
        runtime, any_channel = await build_runtime(app, role)
        settle_long_lived_objects()
        if not any_channel and role == "all" and not runtime.services:
            from bot.channels.console import ConsoleChannel

            log.info("no channel token configured: starting the terminal chat")
            console = ConsoleChannel(runtime.engine, user_id=console_user)
            # Notices and reminders for the terminal user are printed in the terminal.
            runtime.senders.register(console.sender())
            for install in background_installers():
                await install(runtime)
            started_here: list[Service] = []
            try:
                for service in runtime.services:
                    await service.start()
                    started_here.append(service)
                await console.run()
            finally:
                for service in reversed(started_here):
                    await service.stop()
            return
        # Before anything starts: a webhook or a /files link signed with a guessable secret could be forged.
        settings.check_public_serving(serving_web=serves_web(runtime))
        stop = _stop_event()
        started: list[Service] = []
        try:
            for service in runtime.services:
                log.info("starting %s", service.name)
                await service.start()
                started.append(service)
            if serves_web(runtime) and not stop.is_set():
                await _serve(runtime)
            else:
                await stop.wait()
        finally:
            for service in reversed(started):
                log.info("stopping %s", service.name)
                await service.stop()
    finally:
        await app.close()
