"""Group commit: concurrent callers share one flush of everything that queued meanwhile.

A caller that finds the batcher idle is flushed at once, alone, so a quiet service adds
no latency; callers arriving while a flush runs wait for the next one and go together.
Under load a batch therefore grows to what arrived during one round trip, which is what
turns one database write and one produce per request into one per batch.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]
"""Handles a batch; answers one result or exception per item, in the items' order."""


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: "asyncio.Future[R]"


@dataclass
class GroupCommit(Generic[T, R]):
    flush: Flush[T, R]
    max_batch: int = 256
    _queue: list[_Waiting[T, R]] = field(default_factory=list)
    _flusher: "asyncio.Task[None] | None" = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next flush and wait for its own result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # a caller that gave up (cancelled) leaves its result unread: do not warn about it
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(_Waiting(item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        batch: list[_Waiting[T, R]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    results = await self.flush([w.item for w in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"flush gave {len(results)} results for {len(batch)}")
                except Exception as exc:  # the whole batch failed: every caller hears why
                    results = [exc] * len(batch)
                for waiting, result in zip(batch, results, strict=True):
                    if waiting.future.done():
                        continue
                    if isinstance(result, Exception):
                        waiting.future.set_exception(result)
                    else:
                        waiting.future.set_result(result)
        except BaseException:  # cancelled (shutdown): nobody is left waiting forever
            for waiting in [*batch, *self._queue]:
                waiting.future.cancel()
            self._queue = []
            raise
