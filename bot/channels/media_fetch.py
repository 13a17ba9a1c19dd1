"""Downloading a photo people send on Zalo from the link in the event, and from nowhere else.

The link comes from a webhook body or an update, so the bot must not become a way to reach other
hosts (its own machine, the cloud metadata address, the local network). A link is followed only
when its host is one of ZALO_MEDIA_HOSTS (Zalo's CDNs by default) and every address that host
resolves to is public; redirects are followed by hand, at most MAX_REDIRECTS, each hop checked
the same way. An IP address listed literally in ZALO_MEDIA_HOSTS is trusted as it is (a local
mirror, or a test server on 127.0.0.1) — that one address only.

Every refusal is a PhotoDownloadError, so the person gets the same "could not download" answer
whatever the reason: the reply never tells an open port from a closed one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass

import httpx

from bot.flows.engine import PhotoDownloadError
from bot.storage.evidence import PhotoTooLarge
from bot.web.body import read_capped
from bot.zalo.transport import RetryPolicy

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class LinkRefused(PhotoDownloadError):
    """The photo link (or a redirect) points outside the allowed hosts or to a non-public address."""


class _ServerError(Exception):
    pass


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (not private, loopback, link-local, multicast, …)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class HostPolicy:
    """The hosts photo links may point to: "*.domain" (any name under it), exact names and IPs."""

    hosts: tuple[str, ...]

    def allows(self, host: str) -> bool:
        address = _ip(host)
        for entry in self.hosts:
            if entry.startswith("*."):
                if host.endswith(entry[1:]):
                    return True
            elif host == entry or (address is not None and _ip(entry) == address):
                return True
        return False

    def listed_address(self, host: str) -> bool:
        """An IP address written in the list itself: trusted even when it is not public."""
        address = _ip(host)
        return address is not None and any(_ip(entry) == address for entry in self.hosts)

    async def check(self, url: httpx.URL) -> None:
        """Raise LinkRefused unless `url` may be fetched (resolving its host to check the addresses)."""
        if url.scheme not in ("http", "https"):
            raise LinkRefused(f"scheme {url.scheme!r} refused")
        host = url.raw_host.decode("ascii", "replace").lower().rstrip(".")
        if not host or not self.allows(host):
            raise LinkRefused(f"host {host!r} is not in ZALO_MEDIA_HOSTS")
        if self.listed_address(host):
            return
        literal = _ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise LinkRefused(f"host {host!r} does not resolve") from exc
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses or not all(is_public(a) for a in addresses):
            raise LinkRefused(f"host {host!r} resolves to a non-public address")


async def _fetch(http: httpx.AsyncClient, url: str, max_bytes: int, timeout: float, policy: HostPolicy) -> bytes:
    current = httpx.URL(url)
    for _hop in range(MAX_REDIRECTS + 1):
        await policy.check(current)
        async with http.stream("GET", current, timeout=timeout, follow_redirects=False) as response:
            if response.is_redirect:
                current = current.join(response.headers["location"])
                continue
            if response.status_code >= 500:
                raise _ServerError(response.status_code)
            if response.status_code != 200:
                raise PhotoDownloadError(f"HTTP {response.status_code} for the photo link")
            declared = response.headers.get("content-length", "")
            return await read_capped(declared, response.aiter_bytes(), max_bytes, PhotoTooLarge)
    raise LinkRefused(f"more than {MAX_REDIRECTS} redirects")


async def download_image(
    http: httpx.AsyncClient, url: str, max_bytes: int, retry: RetryPolicy, timeout: float, policy: HostPolicy
) -> bytes:
    """Fetch a photo from a (soon expiring) platform URL, stopping as soon as it passes the limit."""
    attempts = max(1, retry.attempts)
    for attempt in range(attempts):
        try:
            return await _fetch(http, url, max_bytes, timeout, policy)
        except LinkRefused as exc:
            log.warning("photo link refused: %s", exc)
            raise
        except _ServerError as exc:
            if attempt + 1 >= attempts:
                raise PhotoDownloadError(f"HTTP {exc.args[0]} for the photo link") from exc
        except httpx.TimeoutException as exc:
            if attempt + 1 >= attempts:
                raise PhotoDownloadError("the photo download timed out") from exc
        except (httpx.HTTPError, httpx.InvalidURL, KeyError, ValueError) as exc:
            raise PhotoDownloadError(f"photo download failed: {type(exc).__name__}") from exc
        await asyncio.sleep(retry.delay(attempt))
    raise PhotoDownloadError("the photo could not be downloaded")
