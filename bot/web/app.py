"""The one Starlette app that serves every webhook (Telegram, Zalo Bot Platform, Zalo OA),
a health check, signed file links and the review desk (/desk). Channels contribute their routes;
uvicorn serves it."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import App
from bot.web.desk import Desk, DeskHeaders
from bot.web.signing import BadSignature, sign, verify

Hook = Callable[[], Awaitable[None]]
FILES_PATH = "/files"
# Served files are personal data: never sniffed into another type, images shown under a neutral
# name (the stored name is a content hash), exports always downloaded.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff"}


def folder_root(app: App, folder: str) -> Path:
    return Path(app.settings.evidence_dir) if folder == "evidence" else app.settings.export_dir


def signed_url(app: App, folder: str, relative_path: str, ttl: timedelta = timedelta(hours=24)) -> str:
    """A public link to a stored file, valid for `ttl` (needs PUBLIC_BASE_URL)."""
    base = (app.settings.public_base_url or f"http://{app.settings.web_host}:{app.settings.web_port}").rstrip("/")
    token = sign(app.settings.signing_secret, folder, relative_path, app.clock.now(), ttl)
    return f"{base}{FILES_PATH}/{token}"


def create_web_app(
    app: App,
    routes: Sequence[BaseRoute] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Starlette:
    # /files links are signed with SIGNING_SECRET (and webhooks may rely on it): never serve with a guessable one.
    app.settings.check_public_serving(serving_web=True)

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def files(request: Request) -> Response:
        try:
            folder, relative = verify(app.settings.signing_secret, request.path_params["token"], app.clock.now())
        except BadSignature:
            return JSONResponse({"error": "invalid or expired link"}, status_code=403)
        root = folder_root(app, folder).resolve()
        path = (root / relative).resolve()
        if root not in path.parents or not path.is_file():
            return JSONResponse({"error": "not found"}, status_code=404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if folder == "evidence" and media_type.startswith("image/"):
            filename, disposition = "photo" + (mimetypes.guess_extension(media_type) or ""), "inline"
        else:
            filename, disposition = path.name, "attachment"
        return FileResponse(
            path, media_type=media_type, headers=FILE_HEADERS, filename=filename, content_disposition_type=disposition
        )

    @asynccontextmanager
    async def lifespan(_starlette: Starlette) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook()

    # The review desk for officers and leaders (bot/web/desk.py), beside the chat commands.

    all_routes = [
        Route("/healthz", health, methods=["GET"]),
        Route(FILES_PATH + "/{token:str}", files, methods=["GET"]),
        *Desk(app).routes(),
        *routes,
    ]
    return Starlette(routes=all_routes, lifespan=lifespan, middleware=[Middleware(DeskHeaders)])
