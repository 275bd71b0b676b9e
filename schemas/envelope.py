"""CloudEvents 1.0 attributes carried as Kafka headers (binary content mode).

A department system in any language can route on the ``ce_*`` headers alone without
parsing the body.
"""

from datetime import datetime
from typing import Final

CE_SPECVERSION: Final = "1.0"
CE_TYPE_PREFIX: Final = "kr.go.sotong."


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
        "ce_type": CE_TYPE_PREFIX + event_type,
        "ce_source": source,
        "ce_time": time.isoformat(),
        "ce_subject": subject,
        "ce_dataschemaversion": str(schema_version),
        "content-type": "application/json",
    }
    if correlation_id:
        headers["ce_correlationid"] = correlation_id
    return headers
