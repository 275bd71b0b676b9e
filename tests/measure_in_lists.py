"""What a ``$in`` of many values costs the embedded database, by the length of the list.

Not a test (no timing assertions in tests): run it by hand, ideally on a quiet machine::

    .venv/bin/python -m tests.measure_in_lists

It starts SecantusDB in a temporary directory, stores 20,000 documents (four per
``complaint_id``, which has an index), and looks up 2,000 values at a time in lists of 10
to 500: by ``_id``, by ``complaint_id`` and as an ``update_many``. It prints the server's
CPU (from ``/proc``) per value. The cost per value grows with the list, which is why
``services.mongo.find_in`` sends lists of ``IN_CHUNK``.
"""

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from sotong import localstack
from sotong.bench import cpu_seconds

DOCUMENTS = 20_000
LOOKUPS = 2_000
SIZES = (10, 25, 50, 100, 500)


async def measure(uri: str, pid: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    col = client["measure"]["docs"]
    for start in range(0, DOCUMENTS, 5000):
        await col.insert_many(
            [
                {"_id": f"k{i}", "complaint_id": f"c{i // 4}", "n": 0}
                for i in range(start, start + 5000)
            ]
        )
    await col.create_index("complaint_id")

    def cpu() -> float:
        return cpu_seconds(pid) or 0.0

    print("values per $in   _id find   complaint_id find   update_many  (ms server CPU per value)")
    for size in SIZES:
        rounds = range(LOOKUPS // size)
        spent = []
        for field, modulo in (("_id", DOCUMENTS), ("complaint_id", DOCUMENTS // 4)):
            before = cpu()
            for r in rounds:
                prefix = "k" if field == "_id" else "c"
                wanted = [f"{prefix}{(r * size + j) * 3 % modulo}" for j in range(size)]
                await col.find({field: {"$in": wanted}}).to_list()
            spent.append(cpu() - before)
        before = cpu()
        for r in rounds:
            wanted = [f"k{(r * size + j) * 3 % DOCUMENTS}" for j in range(size)]
            await col.update_many({"_id": {"$in": wanted}}, {"$inc": {"n": 1}})
        spent.append(cpu() - before)
        cells = "".join(f"{s * 1000 / LOOKUPS:>14.3f}" for s in spent)
        print(f"{size:>15}{cells}")
    await client.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        port = localstack.free_port()
        mongo = localstack.embedded_mongo(port, Path(root) / "mongo", Path(root) / "logs")
        mongo.start()
        try:
            mongo.wait_until(lambda: localstack.port_open(port), 60)
            pid = mongo.process.pid if mongo.process else 0
            await measure(localstack.embedded_mongo_uri(port), pid)
        finally:
            mongo.stop()


if __name__ == "__main__":
    asyncio.run(main())
