"""Photos a resident attaches to a filing: which files are accepted, by their bytes (not
the name or the type the browser claims), and the id a stored photo is served under.

The portal keeps the photos (GridFS in its own database) and intake carries their
addresses as the complaint's ``attachments``, so a handler opens them like any link;
the id is 128 random bits, so the address is the only way to them."""

import re
import secrets

MAX_PHOTOS = 3
MAX_BYTES = 10 * 1024 * 1024
PHOTO_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_photo_id() -> str:
    return secrets.token_urlsafe(16)


def image_type(data: bytes) -> str | None:
    """The image's media type from its first bytes; None when it is not a photo we take."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "image/heic"
    return None
