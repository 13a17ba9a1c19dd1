"""A host for the photo links Zalo hands out: serves bytes until a link is made to expire, can
redirect a link elsewhere, and counts every request it gets (hits)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route


class FakeImageHost:
    def __init__(self) -> None:
        self.base_url = ""
        self.images: dict[str, bytes] = {}
        self.expired: set[str] = set()
        self.redirects: dict[str, str] = {}
        self.hits: dict[str, int] = {}
        self.app = Starlette(routes=[Route("/img/{name}", self._get, methods=["GET"])])

    def add(self, name: str, data: bytes) -> str:
        self.images[name] = data
        return f"{self.base_url}/img/{name}"

    def expire(self, name: str) -> None:
        self.expired.add(name)

    def redirect(self, name: str, location: str) -> str:
        """A link that answers 302 to `location`."""
        self.redirects[name] = location
        return f"{self.base_url}/img/{name}"

    async def _get(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        if name in self.redirects:
            return RedirectResponse(self.redirects[name], status_code=302)
        if name in self.expired:
            return PlainTextResponse("link expired", status_code=403)
        data = self.images.get(name)
        if data is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(data, media_type="image/jpeg")
