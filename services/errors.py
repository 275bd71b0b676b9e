"""Errors say whether trying again can help. The dead-letter middleware decides from that."""

from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)

from schemas.events import FieldError


class ProcessingError(Exception):
    retryable: bool = False


class PermanentError(ProcessingError):
    """The message can never be processed as it is: dead-letter it at once."""

    retryable = False


class RetryableError(ProcessingError):
    """A dependency is not ready (yet): retry with backoff, dead-letter after the cap."""

    retryable = True


TRANSIENT = (
    KafkaError,
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    TimeoutError,
    OSError,
)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProcessingError):
        return exc.retryable
    if isinstance(exc, ValidationError | ValueError | TypeError | KeyError):
        return False
    return isinstance(exc, TRANSIENT)


class InvalidMessage(PermanentError):
    """A record that is not the message its topic carries, found by a batch handler that
    parses each record itself. Its fields are located from the message's root, as
    :func:`field_errors` gives them (FastStream's parameter errors start with the
    parameter's name instead, which the dead-letter kit strips)."""

    def __init__(self, exc: ValidationError) -> None:
        self.fields = field_errors(exc)
        super().__init__(describe(exc))


def field_errors(exc: ValidationError, *, strip_root: bool = False) -> list[FieldError]:
    """Each bad field and why, without echoing the input (it may hold personal data).

    ``strip_root`` drops the first location element: FastStream validates a message as
    the handler's parameter, so its errors start with the parameter's name.
    """
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err["loc"]]
        if strip_root and loc:
            loc = loc[1:]
        out.append(FieldError(field=".".join(loc) or "(message)", reason=err["msg"]))
    return out


def describe(exc: BaseException, *, strip_root: bool = False) -> str:
    """A reason safe to log and to put on a dead letter: never the offending input."""
    if isinstance(exc, ValidationError):
        errs = field_errors(exc, strip_root=strip_root)
        return f"{len(errs)} invalid field(s): " + "; ".join(f"{e.field}: {e.reason}" for e in errs)
    return f"{type(exc).__name__}: {exc}"
