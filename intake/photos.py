"""Photos a resident attaches: JPEG, PNG and HEIC (iPhones' default; read with
pillow-heif, kept as JPEG), accepted by content, not by name or claimed type,
and what is kept of each — the pixels re-encoded without any metadata (EXIF with its GPS
position, XMP, comments, text chunks, colour profiles), and a thumbnail.

Pure: bytes in, bytes out, no I/O; ``intake/photo_store.py`` keeps them in GridFS.
"""

import functools
import io
import secrets
import warnings
from dataclasses import dataclass
from enum import StrEnum

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

PHOTO_ID = r"^[A-Za-z0-9_-]{22}$"
"""128 random bits, URL-safe base64: the id is the only way to a photo before filing."""


def new_photo_id() -> str:
    return secrets.token_urlsafe(16)


class MediaType(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"
    HEIC = "image/heic"
    """Taken, and kept as JPEG: what every browser and department system can show."""


_FORMATS = {MediaType.JPEG: "JPEG", MediaType.PNG: "PNG", MediaType.HEIC: "HEIF"}
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


@functools.cache
def _read_heif() -> None:
    """Teach Pillow to read HEIF (pillow-heif), once, when the first photo arrives."""
    pillow_heif.register_heif_opener()


def sniff(data: bytes) -> MediaType | None:
    """The photo's type from its first bytes; None when it is not a type we take."""
    if data.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType.PNG
    if data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS:
        return MediaType.HEIC
    return None


class PhotoRefused(ValueError):
    """Not a photo we keep; ``status`` is 413 for too large, 422 otherwise."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    thumbnail_pixels: int


@dataclass(frozen=True)
class Processed:
    media_type: MediaType
    data: bytes
    width: int
    height: int
    thumbnail: bytes
    """Always a JPEG."""


def process(data: bytes, limits: Limits) -> Processed:
    """Check the upload and re-encode it without metadata, upright (the EXIF orientation
    is applied before the EXIF is dropped), with a JPEG thumbnail."""
    if len(data) > limits.max_bytes:
        raise PhotoRefused(413, f"larger than {limits.max_bytes} bytes")
    media_type = sniff(data)
    if media_type is None:
        raise PhotoRefused(422, "not a JPEG, PNG or HEIC image (judged by its content)")
    if media_type is MediaType.HEIC:
        _read_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[_FORMATS[media_type]])
            width, height = image.size
            if width * height > limits.max_pixels:
                raise PhotoRefused(422, f"more than {limits.max_pixels} pixels")
            image.load()
    except PhotoRefused:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PhotoRefused(422, f"not a readable {media_type.name} image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRefused(422, f"more than {limits.max_pixels} pixels") from exc
    upright = ImageOps.exif_transpose(image)
    if media_type is MediaType.HEIC:
        media_type = MediaType.JPEG
    clean = _pixels_only(upright, media_type)
    out = io.BytesIO()
    if media_type is MediaType.JPEG:
        clean.save(out, format="JPEG", quality=88, optimize=True)
    else:
        clean.save(out, format="PNG", optimize=True)
    return Processed(
        media_type=media_type,
        data=out.getvalue(),
        width=clean.width,
        height=clean.height,
        thumbnail=_thumbnail(clean, limits.thumbnail_pixels),
    )


def _pixels_only(image: Image.Image, media_type: MediaType) -> Image.Image:
    """A new image from the pixels alone: nothing of ``image.info`` (EXIF, XMP, ICC,
    comments, PNG text) can travel with it into the saved file."""
    wanted = {"RGB", "L"} if media_type is MediaType.JPEG else {"RGB", "RGBA", "L", "LA"}
    if image.mode not in wanted:
        has_alpha = "A" in image.mode or "transparency" in image.info
        target = "RGBA" if has_alpha and media_type is MediaType.PNG else "RGB"
        image = image.convert(target)
    return Image.frombytes(image.mode, image.size, image.tobytes())


def _thumbnail(image: Image.Image, longest: int) -> bytes:
    small = image.copy()
    small.thumbnail((longest, longest))
    if small.mode != "RGB":
        background = Image.new("RGB", small.size, "white")
        rgba = small.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        small = background
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=80)
    return out.getvalue()
