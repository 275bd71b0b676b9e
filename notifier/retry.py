"""How long one channel is tried for one message before it counts as failed: pure.

A retryable failure (a timeout, a 5xx, a 429) is tried again in place, after a capped
exponential backoff with jitter, up to ``max_attempts``; a provider's ``Retry-After`` is
honoured up to the cap. A permanent failure is not tried again at all. The handlers do
the waiting, through a ``sleep`` they are given, so tests need not wait.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often one channel is tried for one message before it counts as failed."""

    max_attempts: int = 4
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Capped exponential backoff with jitter; a provider's Retry-After is honoured
        up to the cap."""
        ceiling = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2 ** (attempt - 1))
        wait = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff_seconds))
        return wait

    def gives_up(self, attempt: int) -> bool:
        """Whether a retryable failure on this attempt ends the tries on this channel."""
        return attempt >= self.max_attempts


@dataclass(frozen=True)
class Tried:
    """What trying one channel came to, after any retries."""

    ok: bool
    attempts: int
    reason: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    """The provider's own Retry-After on the last failure, if it gave one."""
