"""Real image bytes for evidence tests (made with Pillow, never fixtures on disk)."""

from __future__ import annotations

import io

from PIL import Image


def jpeg(color: tuple[int, int, int] = (200, 120, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def png(color: tuple[int, int, int] = (10, 160, 90), size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()
