"""Decoding images people send: within a memory bound, and never on the event loop.

Pillow decodes a whole canvas whatever the file weighs: an 8000×10000 lossless WebP of a few KB
took 1.5 GB and seconds of CPU. So the canvas size is read from the header and checked before
anything is decoded, against what one decode may use (DECODE_BUDGET). JPEG photos (what phones
send) are decoded at a reduced scale with `draft`, so a 50-megapixel photo costs about what a
12-megapixel one does.

Decoding runs in a pool of its own with two threads: the event loop keeps answering webhooks
meanwhile, and at most two decodes hold memory at any time, whatever arrives at once.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from PIL import Image, ImageOps

# What one decode (and the cleaning after it) may use at its peak.
DECODE_BUDGET = 200 * 1024 * 1024
# Peak bytes a pixel, measured with Pillow 13 (bench/photo_decode.py): JPEG decodes straight into
# the image; PNG and GIF palettes are expanded to RGBA; the WebP decoder keeps two canvases of its
# own and a copy of the frame besides the image. So a WebP may have about 10 megapixels, a PNG or
# GIF 16, a JPEG 30 after its reduced-scale decode (every phone photo, even 200 MP, fits).
_PEAK_BYTES_PER_PIXEL = {"JPEG": 7, "MPO": 7, "WEBP": 20}
_DEFAULT_PEAK_BYTES_PER_PIXEL = 13
IMAGE_THREADS = 2
# Formats whose decoder can scale down while decoding (Pillow's JPEG `draft`).
_DRAFTABLE = {"JPEG", "MPO"}
# Modes Pillow resizes well as they are; others (palette, 1-bit, 16-bit) are converted first.
_RESIZABLE = {"RGB", "RGBA", "L", "LA", "CMYK"}
_SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N"}

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class TooManyPixels(ValueError):
    """The image would take too much memory to decode."""


def fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """`size` scaled down (never up) so that its longer side is at most `longest`."""
    width, height = size
    if max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def max_pixels(image_format: str | None, budget: int = DECODE_BUDGET) -> int:
    """How many pixels an image of this format may have to decode within `budget` bytes."""
    return budget // _PEAK_BYTES_PER_PIXEL.get(image_format or "", _DEFAULT_PEAK_BYTES_PER_PIXEL)


def load_bounded(image: Image.Image, longest: int, budget: int = DECODE_BUDGET) -> None:
    """Decode a just-opened image, refusing it from its header when it would take too much memory.

    JPEG is decoded at the smallest scale that still covers `longest` pixels on the long side, and
    refused only when even that is too large. The image may come out larger than `longest` (the
    scales are powers of two): the caller resizes.
    """
    if image.format in _DRAFTABLE:
        image.draft(None, fit_within(image.size, longest))
    width, height = image.size
    cap = max_pixels(image.format, budget)
    if width * height > cap:
        raise TooManyPixels(f"{width}x{height} {image.format} is more than {cap} pixels")
    image.load()


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def upright_within(image: Image.Image, longest: int, budget: int = DECODE_BUDGET) -> Image.Image:
    """A just-opened image decoded within `budget`, scaled down to at most `longest` pixels on its
    long side and turned as its EXIF (or XMP) orientation says (the tag is then gone from it).
    Its other metadata is still in `info`: callers that keep the result drop it."""
    load_bounded(image, longest, budget)
    if image.mode in _SIXTEEN_BIT:
        image = image.convert("I").point(lambda value: value / 256, "L")  # 16-bit grey to 8-bit
    elif image.mode not in _RESIZABLE:
        image = image.convert("RGBA" if has_alpha(image) else "RGB")
    image.thumbnail((longest, longest), Image.Resampling.LANCZOS)  # shrinks only, keeps the ratio
    # Turned on the small image: cheaper, and the same pixels.
    return ImageOps.exif_transpose(image)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=IMAGE_THREADS, thread_name_prefix="images")
        return _pool


async def in_image_thread(function: Callable[..., T], *args: object) -> T:
    """Run Pillow work in the image pool and wait for it without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(function, *args))


DHASH_SIZE = 8  # 8 × 8 comparisons: a 64-bit hash, 16 hex digits


def dhash(image: Image.Image) -> str:
    """A difference hash: the photo shrunk to 9 × 8 grey pixels, one bit per pair of neighbours
    (is the left one brighter). Re-encoding, resizing or light edits change few bits; another
    photo changes about half. Compare two with `hamming`."""
    small = image.convert("L").resize((DHASH_SIZE + 1, DHASH_SIZE), Image.Resampling.BOX)
    pixels = small.tobytes()  # one byte a pixel in mode L
    bits = 0
    for row in range(DHASH_SIZE):
        for col in range(DHASH_SIZE):
            left = pixels[row * (DHASH_SIZE + 1) + col]
            right = pixels[row * (DHASH_SIZE + 1) + col + 1]
            bits = (bits << 1) | (1 if left > right else 0)
    return f"{bits:016x}"


def hamming(first: str, second: str) -> int:
    """How many bits two hex hashes differ in."""
    return bin(int(first, 16) ^ int(second, 16)).count("1")
