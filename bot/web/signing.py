"""Signed, expiring links to files the bot serves (evidence photos for Zalo, exports).

Zalo's Bot Platform sends photos by public URL only, so a reviewer's photo is served from our own
web app through a link that names the file, expires, and cannot be forged or widened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

FOLDERS = ("evidence", "exports")


class BadSignature(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, folder: str, relative_path: str, now: datetime, ttl: timedelta) -> str:
    if folder not in FOLDERS:
        raise ValueError(f"unknown folder {folder!r}")
    payload = json.dumps(
        {"f": folder, "p": relative_path, "e": int((now + ttl).timestamp())}, separators=(",", ":")
    ).encode()
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret: str, token: str, now: datetime) -> tuple[str, str]:
    """Return (folder, relative path) for a valid, unexpired token; raise BadSignature otherwise."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload = _unb64(payload_part)
        mac = _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise BadSignature("malformed token") from exc
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise BadSignature("bad signature")
    try:
        data = json.loads(payload)
        folder, path, expires = data["f"], data["p"], int(data["e"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadSignature("bad payload") from exc
    if folder not in FOLDERS:
        raise BadSignature("bad folder")
    if now.timestamp() > expires:
        raise BadSignature("expired")
    return folder, path
