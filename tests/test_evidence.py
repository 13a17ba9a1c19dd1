"""Evidence files: Pillow checks, size cap, stored once by sha256."""

from __future__ import annotations

import hashlib

import pytest

from bot.storage.evidence import EvidenceStore, NotAnImage, PhotoTooLarge
from tests.support.images import jpeg, png


def test_photo_is_stored_once_under_its_digest(tmp_path):
    store = EvidenceStore(tmp_path, 1024 * 1024)
    data = jpeg()
    first = store.store(data)
    second = store.store(data)
    assert first == second
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.mime == "image/jpeg" and (first.width, first.height) == (64, 48)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [tmp_path / first.path]
    assert store.open_path(first.path).read_bytes() == data
    assert store.store(png()).mime == "image/png"


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.4 not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 20, jpeg()[:60]],
)
def test_non_images_are_refused(tmp_path, data):
    with pytest.raises(NotAnImage):
        EvidenceStore(tmp_path, 1024 * 1024).store(data)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_too_large_is_refused_before_decoding(tmp_path):
    with pytest.raises(PhotoTooLarge):
        EvidenceStore(tmp_path, 100).store(jpeg())


def test_paths_cannot_escape_the_folder(tmp_path):
    with pytest.raises(ValueError):
        EvidenceStore(tmp_path, 100).open_path("../../etc/passwd")
