"""What the MongoDB adapters share."""

from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def only_duplicates(exc: BulkWriteError) -> None:
    """A bulk write of idempotent inserts and upserts: a duplicate key means another
    attempt wrote first. Anything else is re-raised."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
        raise exc


def optional_str(value: object) -> str | None:
    return None if value is None else str(value)
