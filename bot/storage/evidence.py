"""Evidence photo files: decoded, cleaned and re-encoded, then stored once per sha256.

Every photo is re-encoded before it is kept, so nothing of the original file survives but its
pixels: no EXIF (GPS position, phone make and model, owner, thumbnail), no XMP, no comment, no
colour profile (colours are converted to sRGB first). The EXIF orientation is applied to the
pixels. The long side is at most MAX_SIDE pixels (enough to read a certificate or a book spine),
photos become JPEG at quality JPEG_QUALITY, and images with real transparency PNG. The same sent
file always gives the same stored bytes, so the sha256 of the stored file tells a photo sent twice.

Cleaning (`prepare`) is CPU work done before any database transaction, in the image thread pool
(`bot.images`); writing the file (`save`) happens only once the conversation takes the photo.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, UnidentifiedImageError

from bot.images import TooManyPixels, dhash, has_alpha, in_image_thread, upright_within

# Formats people's phones produce; anything else is refused with a clear message.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "HEIF"}
MAX_SIDE = 2560
JPEG_QUALITY = 85
_EXT = {"image/jpeg": "jpg", "image/png": "png"}


class EvidenceError(Exception):
    """Base for a photo that cannot be accepted; `reason` is a catalog key suffix."""

    reason = "invalid"


class PhotoTooLarge(EvidenceError):
    reason = "too_large"


class NotAnImage(EvidenceError):
    reason = "not_image"


class CanvasTooLarge(EvidenceError):
    """More pixels than one decode may hold in memory (`bot.images`), whatever the file weighs."""

    reason = "too_many_pixels"


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    path: str  # relative to the evidence folder
    size: int
    mime: str
    width: int
    height: int
    dhash: str | None = None  # perceptual hash (bot.images.dhash), to spot a photo used twice


@dataclass(frozen=True)
class CleanPhoto:
    """A photo ready to store: re-encoded bytes and what the evidence row records about them."""

    data: bytes
    sha256: str  # of `data`, the bytes stored
    mime: str
    width: int
    height: int
    dhash: str | None = None

    @property
    def blob(self) -> StoredBlob:
        """Where and what the file is once saved (the path follows from the digest)."""
        digest = self.sha256
        path = f"{digest[:2]}/{digest[2:4]}/{digest}.{_EXT[self.mime]}"
        return StoredBlob(digest, path, len(self.data), self.mime, self.width, self.height, self.dhash)


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB or RGBA in sRGB: a colour profile is applied to the pixels rather than kept."""
    mode = "RGBA" if has_alpha(image) else "RGB"
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if image.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(source).lower():
                return image if image.mode == mode else image.convert(mode)  # already sRGB
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unreadable profile: plain conversion below
    return image if image.mode == mode else image.convert(mode)


def clean_image(source: Image.Image) -> tuple[bytes, str, int, int, str]:
    """Decode a just-opened image within the memory budget; return (bytes, mime, width, height)
    of its clean re-encoding, and its perceptual hash."""
    icc = source.info.get("icc_profile")
    image = _to_srgb(upright_within(source, MAX_SIDE), icc)
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")  # an alpha channel that hides nothing
    image.info = {}  # nothing of the original reaches the encoder: EXIF, XMP, comment, ICC
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, "PNG")
        mime = "image/png"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
        mime = "image/jpeg"
    return buffer.getvalue(), mime, image.width, image.height, dhash(image)


class EvidenceStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def prepare(self, data: bytes) -> CleanPhoto:
        """Check and clean a received file (CPU work, no disk); raises an EvidenceError.

        Never trusts the file name or declared type: the bytes must open as an image of a
        format phones produce, decode completely, and fit the pixel cap."""
        if len(data) > self.max_bytes:
            raise PhotoTooLarge(f"{len(data)} bytes > {self.max_bytes}")
        if not data:
            raise NotAnImage("empty file")
        try:
            with Image.open(io.BytesIO(data)) as source:
                if source.format not in ACCEPTED_FORMATS:
                    raise NotAnImage(f"unsupported image format {source.format!r}")
                clean, mime, width, height, perceptual = clean_image(source)
        except EvidenceError:
            raise
        except (TooManyPixels, Image.DecompressionBombError) as exc:
            raise CanvasTooLarge(str(exc)) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise NotAnImage(str(exc)) from exc
        return CleanPhoto(clean, hashlib.sha256(clean).hexdigest(), mime, width, height, perceptual)

    async def prepare_async(self, data: bytes) -> CleanPhoto:
        """`prepare` in the image thread pool, off the event loop."""
        return await in_image_thread(self.prepare, data)

    def write(self, photo: CleanPhoto) -> StoredBlob:
        """Write the photo's file unless it is there already (same digest, same bytes)."""
        blob = photo.blob
        target = self.root / blob.path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file and rename, so a crash never leaves a half photo behind.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(photo.data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            # Reused: freshen its time, so the hourly sweep of unreferenced files (which spares
            # young files) cannot remove it while the row that will use it is not committed yet.
            os.utime(target)
        return blob

    async def save(self, photo: CleanPhoto) -> StoredBlob:
        """`write` in a worker thread (it waits for the disk)."""
        return await asyncio.to_thread(self.write, photo)

    def store(self, data: bytes) -> StoredBlob:
        """Clean and write in one go (tools and tests; the chat flows prepare and save apart)."""
        return self.write(self.prepare(data))

    def has(self, blob: StoredBlob) -> bool:
        return (self.root / blob.path).is_file()

    def open_path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("evidence path escapes the evidence folder")
        return path
