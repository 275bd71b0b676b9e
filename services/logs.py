"""Structured JSON logs carrying complaint id, correlation id and trace id, never personal data.

Handlers never pass personal data to a logger; the context variables below are the
only place complaint and correlation ids come from, so every line of one message's
processing carries them.
"""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from services.telemetry import trace_id

complaint_id_var: ContextVar[str | None] = ContextVar("complaint_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (cid := complaint_id_var.get()) is not None:
            entry["complaint_id"] = cid
        if (corr := correlation_id_var.get()) is not None:
            entry["correlation_id"] = corr
        if (trace := trace_id(cid)) is not None:  # the trace to open in the trace backend
            entry["trace_id"] = trace
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # FastStream and uvicorn install their own coloured handlers: route them through ours.
    for name in ("faststream", "faststream.access", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


@contextmanager
def bound(*, complaint_id: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    tokens = []
    if complaint_id is not None:
        tokens.append((complaint_id_var, complaint_id_var.set(complaint_id)))
    if correlation_id is not None:
        tokens.append((correlation_id_var, correlation_id_var.set(correlation_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
