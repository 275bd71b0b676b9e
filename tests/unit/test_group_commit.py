"""Group commit: callers arriving during a flush share the next one; results stay theirs."""

import asyncio
from collections.abc import Sequence

import pytest

from services.batching import GroupCommit


class Recorder:
    def __init__(self, fail_on: str | None = None, crash: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.crash = crash
        self.release = asyncio.Event()

    async def flush(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()  # hold the first flush so others queue up
        if self.crash:
            raise ConnectionError("database unreachable")
        return [ValueError(i) if i == self.fail_on else i.upper() for i in items]


async def test_a_lone_caller_is_flushed_at_once_and_later_callers_go_together() -> None:
    recorder = Recorder(fail_on="c")
    batcher: GroupCommit[str, str] = GroupCommit(recorder.flush)
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.submit(x)) for x in ("b", "c", "d")]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == "A"
    results = await asyncio.gather(*others, return_exceptions=True)
    assert results[0] == "B"
    assert results[2] == "D"
    assert isinstance(results[1], ValueError)
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_a_failed_flush_fails_every_caller_of_that_batch_only() -> None:
    recorder = Recorder(crash=True)
    batcher: GroupCommit[str, str] = GroupCommit(recorder.flush)
    tasks = [asyncio.create_task(batcher.submit(x)) for x in ("a", "b")]
    await asyncio.sleep(0)
    recorder.release.set()
    for task in tasks:
        with pytest.raises(ConnectionError):
            await task


async def test_batches_are_capped_at_max_batch() -> None:
    recorder = Recorder()
    batcher: GroupCommit[str, str] = GroupCommit(recorder.flush, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(x)) for x in "abcde"]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await asyncio.gather(*tasks) == list("ABCDE")
    assert [len(b) for b in recorder.batches] == [2, 2, 1]
