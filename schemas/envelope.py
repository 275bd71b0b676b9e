"""CloudEvents 1.0 attributes carried as Kafka headers (binary content mode).

A department system in any language can route on the ``ce_*`` headers alone without
parsing the body, and any CloudEvents SDK's Kafka binding reads a message as an event.

Types follow one pattern: reverse-DNS prefix, event name, schema version
(``kr.go.sotong.complaint.status_changed.v1``); an event name already carrying the
platform's name (``sotong.dead_lettered``) is not prefixed twice.
"""

from datetime import datetime
from typing import Final

CE_SPECVERSION: Final = "1.0"
CE_TYPE_PREFIX: Final = "kr.go.sotong."


def cloudevent_type(event_type: str, schema_version: int) -> str:
    """``complaint.filed`` version 1 → ``kr.go.sotong.complaint.filed.v1``."""
    return f"{CE_TYPE_PREFIX}{event_type.removeprefix('sotong.')}.v{schema_version}"


def cloudevent_headers(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time: datetime,
    subject: str,
    schema_version: int,
    correlation_id: str | None = None,
) -> dict[str, str]:
    headers = {
        "ce_specversion": CE_SPECVERSION,
        "ce_id": event_id,
        "ce_type": cloudevent_type(event_type, schema_version),
        "ce_source": source,
        "ce_time": time.isoformat(),
        "ce_dataschemaversion": str(schema_version),
        "content-type": "application/json",
    }
    if subject:  # the spec allows no empty subject: a letter about no complaint has none
        headers["ce_subject"] = subject
    if correlation_id:
        headers["ce_correlationid"] = correlation_id
    return headers
