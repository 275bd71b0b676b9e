"""Photos a resident attaches to a filing. The portal keeps none: each is handed to
intake (``POST /v1/photos``), which judges it by its bytes, strips every metadata (the
phone's GPS position included), keeps it with a thumbnail and serves it only to the
resident and the responsible department; the filing names the ids intake answered.
A form that comes back with an error carries the ids already uploaded, so nothing is
uploaded twice."""

import re

MAX_PHOTOS = 3
MAX_BYTES = 10 * 1024 * 1024
"""intake's default limit: a larger file is refused here without being sent."""
PHOTO_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
"""intake's photo ids."""
