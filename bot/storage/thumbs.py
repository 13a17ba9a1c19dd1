"""Small copies of evidence photos for the review desk, made once per photo and kept beside the
evidence folder (named by the photo's content hash, so a photo used twice has one thumbnail).
A thumbnail is a fresh JPEG of already cleaned pixels (no metadata); `sweep_thumbnails` drops
the ones whose photo file is gone (after a deletion of someone's data, and hourly)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from bot.images import in_image_thread, upright_within

THUMB_SIDE = 320
THUMB_QUALITY = 78


def thumb_dir(evidence_dir: Path | str) -> Path:
    return Path(evidence_dir).parent / "thumbs"


def thumb_path(evidence_dir: Path | str, sha256: str) -> Path:
    if not sha256.isalnum():
        raise ValueError("not a content hash")
    return thumb_dir(evidence_dir) / sha256[:2] / f"{sha256}.jpg"


def _make(source: Path, target: Path) -> Path:
    with Image.open(source) as image:
        small = upright_within(image, THUMB_SIDE)
        if small.mode != "RGB":
            small = small.convert("RGB")
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


async def thumbnail(evidence_dir: Path | str, source: Path, sha256: str) -> Path:
    """The cached thumbnail of a stored photo, made (off the event loop) the first time."""
    target = thumb_path(evidence_dir, sha256)
    if target.is_file():
        return target
    return await in_image_thread(_make, source, target)


def sweep_thumbnails(evidence_dir: Path | str) -> int:
    """Remove the thumbnails whose photo file is gone (deleted with someone's data, past its
    retention, or an orphan); the number removed. Blocking: call it in a thread."""
    removed = 0
    root = thumb_dir(evidence_dir)
    if not root.is_dir():
        return 0
    evidence = Path(evidence_dir)
    for path in root.glob("*/*.jpg"):
        sha = path.stem
        if not any((evidence / sha[:2] / sha[2:4]).glob(f"{sha}.*")):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
