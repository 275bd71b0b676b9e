"""The portal's own MongoDB collection: what it remembers for a resident.

One document per resident in ``portal_residents``, found by the SHA-256 of the resident
token (as tracker finds a resident's complaints), holding:

- ``complaints``: complaint id → its tracking token, sealed (``portal.sealing``), and
  its receipt number, so the resident can act on a complaint from any page without
  typing anything, and sees it before tracker has stored it;
- ``favourites``: the pages the resident starred, in the order starred;
- ``signals``: which suggestion rules the resident's behaviour has met (rule ids and a
  time, never what the resident wrote).

Nothing here is a complaint's content, photos included: that stays with intake and tracker.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from portal.sealing import CannotUnseal, seal, unseal
from schemas.tokens import hash_token
from services.mongo import Document

MAX_FAVOURITES = 30
COMPLAINT_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
MAX_SIGNALS = 50


@dataclass(frozen=True)
class Favourite:
    path: str
    label: str


@dataclass(frozen=True)
class Followed:
    complaint_id: str
    receipt_number: str


@dataclass(frozen=True)
class Signal:
    rule: str
    at: datetime


class PortalStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    async def follow(
        self, resident_token: str, complaint_id: str, tracking_token: str, receipt_number: str
    ) -> None: ...

    async def followed(self, resident_token: str) -> list[Followed]: ...

    async def tracking_token(self, resident_token: str, complaint_id: str) -> str | None: ...

    async def favourites(self, resident_token: str) -> list[Favourite]: ...

    async def add_favourite(self, resident_token: str, favourite: Favourite) -> None: ...

    async def remove_favourite(self, resident_token: str, path: str) -> None: ...

    async def record_signals(self, resident_token: str, rules: list[str], at: datetime) -> None: ...

    async def signals(self, resident_token: str) -> list[Signal]: ...


class MongoPortalStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.residents = db["portal_residents"]

    async def ensure_indexes(self) -> None:
        """Everything is looked up by ``_id``; no other index is needed."""

    async def follow(
        self, resident_token: str, complaint_id: str, tracking_token: str, receipt_number: str
    ) -> None:
        if not COMPLAINT_ID.match(complaint_id):
            raise ValueError("complaint id must be a UUID")  # it becomes a field name
        sealed = seal(tracking_token, resident_token=resident_token, complaint_id=complaint_id)
        await self.residents.update_one(
            {"_id": hash_token(resident_token)},
            {"$set": {f"complaints.{complaint_id}": {"t": sealed, "r": receipt_number}}},
            upsert=True,
        )

    async def followed(self, resident_token: str) -> list[Followed]:
        doc = await self._document(resident_token)
        complaints = (doc or {}).get("complaints", {})
        return [Followed(cid, entry["r"]) for cid, entry in complaints.items()]

    async def _document(self, resident_token: str) -> Document | None:
        return await self.residents.find_one({"_id": hash_token(resident_token)})

    async def tracking_token(self, resident_token: str, complaint_id: str) -> str | None:
        doc = await self._document(resident_token)
        entry = (doc or {}).get("complaints", {}).get(complaint_id)
        if not entry:
            return None
        try:
            return unseal(entry["t"], resident_token=resident_token, complaint_id=complaint_id)
        except CannotUnseal:
            return None

    async def favourites(self, resident_token: str) -> list[Favourite]:
        doc = await self._document(resident_token)
        return [Favourite(f["path"], f["label"]) for f in (doc or {}).get("favourites", [])]

    async def add_favourite(self, resident_token: str, favourite: Favourite) -> None:
        key = hash_token(resident_token)
        await self.residents.update_one(
            {"_id": key}, {"$setOnInsert": {"favourites": []}}, upsert=True
        )
        await self.residents.update_one(
            {"_id": key, "favourites.path": {"$ne": favourite.path}},
            {
                "$push": {
                    "favourites": {
                        "$each": [{"path": favourite.path, "label": favourite.label}],
                        "$slice": -MAX_FAVOURITES,
                    }
                }
            },
        )

    async def remove_favourite(self, resident_token: str, path: str) -> None:
        await self.residents.update_one(
            {"_id": hash_token(resident_token)}, {"$pull": {"favourites": {"path": path}}}
        )

    async def record_signals(self, resident_token: str, rules: list[str], at: datetime) -> None:
        if not rules:
            return
        await self.residents.update_one(
            {"_id": hash_token(resident_token)},
            {
                "$push": {
                    "signals": {
                        "$each": [{"rule": rule, "at": at} for rule in rules],
                        "$slice": -MAX_SIGNALS,
                    }
                }
            },
            upsert=True,
        )

    async def signals(self, resident_token: str) -> list[Signal]:
        doc = await self._document(resident_token)
        return [Signal(s["rule"], s["at"]) for s in (doc or {}).get("signals", [])]
