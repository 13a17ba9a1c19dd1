"""Real image bytes for evidence tests (made with Pillow, never fixtures on disk)."""

from __future__ import annotations

import io

from PIL import ExifTags, Image, ImageCms


def jpeg(color: tuple[int, int, int] = (200, 120, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def png(color: tuple[int, int, int] = (10, 160, 90), size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


# What a phone writes into a photo and must never be stored: where, with what, by whom.
PHONE_MAKE = "SecAuditPhone"
PHONE_MODEL = "Model X-9000"
OWNER = "Nguyen Thi Hoa"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:City="Buon Ma Thuot"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def phone_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone camera writes it: make, model, owner, GPS position and orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = PHONE_MAKE
    exif[ExifTags.Base.Model] = PHONE_MODEL
    exif[ExifTags.Base.Artist] = OWNER
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (12.0, 40.0, 30.5),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (108.0, 3.0, 15.25),
    }
    return exif


def marked(size: tuple[int, int] = (400, 200)) -> Image.Image:
    """A red picture with a blue square in its top-left corner, to see which way it was turned."""
    image = Image.new("RGB", size, (200, 20, 20))
    image.paste((20, 20, 200), (0, 0, size[1] // 2, size[1] // 2))
    return image


def phone_jpeg(orientation: int = 6, size: tuple[int, int] = (400, 200)) -> bytes:
    """A JPEG straight from a phone: EXIF (GPS, make, model, owner, orientation), XMP, a comment
    and a colour profile. Orientation 6: the camera was held upright, the pixels lie on their side."""
    buffer = io.BytesIO()
    marked(size).save(
        buffer,
        "JPEG",
        quality=90,
        exif=phone_exif(orientation),
        xmp=XMP,
        comment=f"owner: {OWNER}".encode(),
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    return buffer.getvalue()


def lossless_webp(size: tuple[int, int], color: tuple[int, int, int] = (240, 240, 240)) -> bytes:
    """A canvas of any size in a few KB: what a decompression bomb looks like."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()
