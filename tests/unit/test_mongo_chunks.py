"""Lookups of many values go to the database in pieces of ``IN_CHUNK``."""

import asyncio
from typing import Any

from services.mongo import IN_CHUNK, delete_in, find_in, in_chunks, update_in


def test_chunks_keep_the_first_of_each_value_in_order() -> None:
    assert in_chunks(["b", "a", "b", "c", "a"], size=2) == [["b", "a"], ["c"]]
    assert in_chunks([]) == []
    pieces = in_chunks(range(IN_CHUNK * 2 + 1))
    assert [len(p) for p in pieces] == [IN_CHUNK, IN_CHUNK, 1]


class Cursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    async def to_list(self) -> list[dict[str, Any]]:
        return self.docs


class Result:
    modified_count = 2
    deleted_count = 3


class Collection:
    """Answers each ``$in`` with one document per value, recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any], Any]] = []

    def find(self, query: dict[str, Any], projection: Any = None, sort: Any = None) -> Cursor:
        self.asked.append(("find", query, sort))
        (field,) = [k for k, v in query.items() if isinstance(v, dict) and "$in" in v]
        return Cursor([{field: v} for v in query[field]["$in"]])

    async def update_many(self, query: dict[str, Any], update: Any) -> Result:
        self.asked.append(("update", query, update))
        return Result()

    async def delete_many(self, query: dict[str, Any]) -> Result:
        self.asked.append(("delete", query, None))
        return Result()


def test_find_in_asks_in_pieces_with_the_filter_first() -> None:
    col = Collection()
    values = [f"c{i}" for i in range(IN_CHUNK + 3)] + ["c0"]
    found = asyncio.run(
        find_in(col, "channel_ref", values, where={"channel": "kakao"}, sort=[("n", 1)])  # type: ignore[arg-type]
    )
    assert sorted(d["channel_ref"] for d in found) == sorted(set(values))
    assert len(col.asked) == 2
    _, query, sort = col.asked[0]
    # the equality first, as the compound (channel, channel_ref) index orders it
    assert list(query) == ["channel", "channel_ref"]
    assert sort == [("n", 1)]
    assert len(query["channel_ref"]["$in"]) == IN_CHUNK


def test_update_and_delete_in_pieces_add_up() -> None:
    col = Collection()
    values = [str(i) for i in range(IN_CHUNK * 2)]
    assert asyncio.run(update_in(col, "_id", values, {"$set": {"x": 1}})) == 4  # type: ignore[arg-type]
    assert asyncio.run(delete_in(col, "_id", values)) == 6  # type: ignore[arg-type]
    assert asyncio.run(find_in(col, "_id", [])) == []  # type: ignore[arg-type]
    assert [kind for kind, _, _ in col.asked] == ["update", "update", "delete", "delete"]
