"""Evidence photo files: checked with Pillow, stored once per sha256 under the evidence folder."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Formats people's phones produce; anything else is refused with a clear message.
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "HEIF": "image/heif", "MPO": "image/jpeg"}
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "image/heif": "heic"}
# Refuse decompression bombs: a 10 MB file claiming a gigapixel canvas.
MAX_PIXELS = 80_000_000


class EvidenceError(Exception):
    """Base for a photo that cannot be accepted; `reason` is a catalog key suffix."""

    reason = "invalid"


class PhotoTooLarge(EvidenceError):
    reason = "too_large"


class NotAnImage(EvidenceError):
    reason = "not_image"


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    path: str  # relative to the evidence folder
    size: int
    mime: str
    width: int
    height: int


class EvidenceStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def check(self, data: bytes) -> tuple[str, int, int]:
        """Return (mime, width, height) or raise; never trusts the file name or declared type."""
        if len(data) > self.max_bytes:
            raise PhotoTooLarge(f"{len(data)} bytes > {self.max_bytes}")
        if not data:
            raise NotAnImage("empty file")
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise NotAnImage(f"{width}x{height} pixels is too many")
                probe.verify()
        except EvidenceError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise NotAnImage(str(exc)) from exc
        mime = _MIME.get(fmt)
        if mime is None:
            raise NotAnImage(f"unsupported image format {fmt!r}")
        return mime, width, height

    def store(self, data: bytes) -> StoredBlob:
        """Validate and write the photo once; a second identical photo reuses the file."""
        mime, width, height = self.check(data)
        digest = hashlib.sha256(data).hexdigest()
        relative = Path(digest[:2]) / digest[2:4] / f"{digest}.{_EXT[mime]}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file and rename, so a crash never leaves a half photo behind.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredBlob(digest, relative.as_posix(), len(data), mime, width, height)

    def open_path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("evidence path escapes the evidence folder")
        return path
