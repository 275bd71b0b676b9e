"""The retry schedule of one channel: grows, is capped, honours Retry-After up to the cap."""

import pytest

from notifier.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, initial_backoff_seconds=0.5, max_backoff_seconds=3.0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)])
def test_the_wait_doubles_with_jitter_up_to_the_cap(attempt: int, ceiling: float) -> None:
    waits = [POLICY.backoff(attempt) for _ in range(50)]
    assert all(ceiling / 2 <= w <= ceiling for w in waits)


def test_a_providers_retry_after_is_honoured_up_to_the_cap() -> None:
    assert POLICY.backoff(1, retry_after=2.5) == 2.5
    assert POLICY.backoff(1, retry_after=60) == 3.0
    assert 0.25 <= POLICY.backoff(1, retry_after=0) <= 0.5


def test_retryable_failures_stop_at_the_attempt_cap() -> None:
    assert [POLICY.gives_up(n) for n in (1, 2, 3, 4, 5)] == [False, False, False, True, True]
