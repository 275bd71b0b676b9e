"""How long a retrain takes, and how much it slows routing's classifier while it runs.

Not a test (no timing assertions in tests): run it by hand on an otherwise quiet machine::

    .venv/bin/python -m tests.measure_learning

It fits the model in use on the shipped training split, then classifies batches of 50
held-out texts on the event loop (what a batch of filings costs routing) three times:
alone, while a candidate is fitted in a worker thread, and while it is fitted in a
spawned process (``routing.learning.in_process``). It prints the fit time and the batch
latencies (median and 95th percentile) in each case.
"""

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from routing.classifier import Classifier, Example, load_examples, split
from routing.learning import Job, Trained, fit_and_score, in_process

BATCH = 50


async def batches_while(
    model: Classifier, texts: list[str], work: Callable[[], Awaitable[object]] | None
) -> tuple[list[float], float]:
    """Batch latencies (ms) on the event loop while ``work`` runs (or for 15 s)."""
    latencies: list[float] = []
    task = asyncio.ensure_future(work()) if work is not None else None
    started = time.perf_counter()
    i = 0
    while (task is not None and not task.done()) or (
        task is None and time.perf_counter() - started < 15
    ):
        chunk = [texts[(i + k) % len(texts)] for k in range(BATCH)]
        i += BATCH
        t = time.perf_counter()
        model.predict_many(chunk)
        latencies.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.01)  # the loop's other work between batches
    if task is not None:
        await task
    return latencies, time.perf_counter() - started


def summary(name: str, latencies: list[float], seconds: float) -> str:
    p95 = statistics.quantiles(latencies, n=20)[18]
    return (
        f"{name:<24} {len(latencies):>5} batches in {seconds:5.1f} s  "
        f"median {statistics.median(latencies):6.1f} ms  p95 {p95:6.1f} ms"
    )


async def main() -> None:
    train, held_out = split(load_examples())
    started = time.perf_counter()
    model = Classifier(threshold=0.75, general_desk="civil-passport").fit(train)
    print(
        f"fit in this process      {time.perf_counter() - started:5.1f} s  ({len(train)} examples)"
    )
    texts = [e.text for e in held_out]
    recent = tuple(held_out[:20])
    extra = [Example(f"{e.text} 다시", e.department) for e in held_out[:50]]
    job = Job(tuple(train + extra), tuple(held_out), recent, model)

    async def in_thread() -> Trained:
        return await asyncio.to_thread(fit_and_score, job)

    result: list[Trained] = []

    async def in_child() -> None:
        result.append(await in_process()(job))

    for _ in range(2):  # twice, interleaved: other work on the machine comes and goes
        alone, secs = await batches_while(model, texts, None)
        print(summary("alone", alone, secs))
        threaded, secs = await batches_while(model, texts, in_thread)
        print(summary("fit in a thread", threaded, secs))
        spawned, secs = await batches_while(model, texts, in_child)
        print(summary("fit in a process", spawned, secs))
        print(f"  fit in the child       {result[-1].fit_seconds:5.1f} s (then both are scored)")


if __name__ == "__main__":
    asyncio.run(main())
