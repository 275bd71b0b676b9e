"""The learned classifier, shared by every routing process.

Routing may run as several replicas. Without sharing, each would retrain on its own and
switch on its own, and two replicas would route the same text differently; a restart
would forget the switched model and fit an unjudged one on every transfer. So:

- **One trainer at a time.** Before fitting a candidate, a process takes the learning
  lease (a MongoDB document with a holder and an expiry, renewed while it fits); the
  others skip their turn.
- **One model in use.** A switched-to model is written once, as an artifact in GridFS
  (bucket ``routing_models``, the fitted pipeline plus the transfer ids it was built
  from), and a pointer document names it. Every process looks at the pointer each
  learning check and at start-up, loads a version it does not have, and swaps to it; so
  every replica, and a restarted one, predicts with the model that was judged.
- **Only for the same code.** The artifact is a pickle of scikit-learn objects, which is
  only safe to load in the environment that wrote it: the pointer carries an environment
  fingerprint (``routing/classifier.py``'s code and the libraries' versions), and a
  process of another version keeps its own model until it is the writer. The pointer also
  carries the artifact's SHA-256, checked before loading (a torn or replaced file is
  refused, not unpickled). Whoever can write routing's database can already route any
  complaint anywhere; the artifact is trusted as the database is.
"""

import asyncio
import hashlib
import io
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import kiwipiepy
import sklearn
from gridfs import AsyncGridFSBucket
from gridfs.errors import GridFSError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from routing import classifier as classifier_module
from routing.classifier import Classifier
from services.mongo import Document

log = logging.getLogger("sotong.routing.models")

BUCKET = "routing_models"
STATE = "routing_learning"
POINTER = "current"
LEASE = "lease"
KEEP = 3
"""Artifacts kept in GridFS: the one in use and a couple before it, for a look back."""


def environment() -> str:
    """What a pickled model depends on besides its examples: the classifier's code and the
    libraries' versions. Two processes with the same one can load each other's models."""
    digest = hashlib.sha256()
    digest.update(Path(classifier_module.__file__).read_bytes())
    digest.update(f"{sklearn.__version__}|{kiwipiepy.__version__}".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Pointer:
    """The model every process should use."""

    version: str
    environment: str
    sha256: str
    switched_at: datetime
    held_out: float | None = None
    recent: float | None = None


@dataclass(frozen=True)
class Shared:
    """A model loaded from the store: the classifier and the transfers it was built from."""

    model: Classifier
    known: frozenset[str]


class ModelStore:
    """Routing's learned models and the learning lease, in MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self.files: AsyncCollection[Document] = db[f"{BUCKET}.files"]
        self.state: AsyncCollection[Document] = db[STATE]

    # -- the lease --------------------------------------------------------------------

    async def acquire(self, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take (or renew) the learning lease; False while another holder has it."""
        until = now + ttl
        found = await self.state.find_one_and_update(
            {"_id": LEASE, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
            {"$set": {"holder": holder, "until": until}},
        )
        if found is not None:
            return True
        try:
            await self.state.insert_one({"_id": LEASE, "holder": holder, "until": until})
        except DuplicateKeyError:  # held by someone else, and not expired
            return False
        return True

    async def release(self, holder: str) -> None:
        await self.state.delete_one({"_id": LEASE, "holder": holder})

    # -- the model in use -------------------------------------------------------------

    async def pointer(self) -> Pointer | None:
        doc = await self.state.find_one({"_id": POINTER})
        if doc is None:
            return None
        return Pointer(
            version=str(doc["version"]),
            environment=str(doc["environment"]),
            sha256=str(doc["sha256"]),
            switched_at=doc["switched_at"],
            held_out=doc.get("held_out"),
            recent=doc.get("recent"),
        )

    async def share(
        self,
        model: Classifier,
        known: Sequence[str],
        *,
        now: datetime,
        held_out: float | None = None,
        recent: float | None = None,
    ) -> Pointer:
        """Write the model's artifact, then point every process at it."""
        assert model.version is not None, "only a fitted model is shared"
        blob = pickle.dumps(
            {"pipeline": model.pipeline, "known": sorted(known)}, protocol=pickle.HIGHEST_PROTOCOL
        )
        sha = hashlib.sha256(blob).hexdigest()
        name = f"{model.version}-{sha[:12]}"
        if await self.files.find_one({"_id": name}, {"_id": 1}) is None:
            await self.bucket.upload_from_stream_with_id(
                name, name, io.BytesIO(blob), metadata={"version": model.version, "at": now}
            )
        pointer = Pointer(model.version, environment(), sha, now, held_out, recent)
        await self.state.replace_one(
            {"_id": POINTER},
            {
                "_id": POINTER,
                "version": pointer.version,
                "environment": pointer.environment,
                "sha256": sha,
                "file": name,
                "switched_at": now,
                "held_out": held_out,
                "recent": recent,
            },
            upsert=True,
        )
        await self._prune(keep=name)
        return pointer

    async def load(self, pointer: Pointer, *, threshold: float, general_desk: str) -> Shared | None:
        """The model the pointer names, or None if it cannot be used here (another
        environment, a missing or altered artifact: said in the log)."""
        if pointer.environment != environment():
            log.info(
                "shared classifier is from another version of routing; keeping this one",
                extra={"model_version": pointer.version},
            )
            return None
        name = f"{pointer.version}-{pointer.sha256[:12]}"
        try:
            stream = await self.bucket.open_download_stream(name)
            blob = await stream.read()
        except GridFSError as exc:
            log.warning(
                "shared classifier artifact missing or torn; not loaded",
                extra={"file": name, "reason": type(exc).__name__},
            )
            return None
        if hashlib.sha256(blob).hexdigest() != pointer.sha256:
            log.warning("shared classifier artifact altered; not loaded", extra={"file": name})
            return None
        content = await asyncio.to_thread(_unpickle, blob)
        model = Classifier(threshold=threshold, general_desk=general_desk)
        model.pipeline = content["pipeline"]
        model.version = pointer.version
        return Shared(model, frozenset(str(k) for k in content["known"]))

    async def _prune(self, *, keep: str) -> None:
        names = [
            str(doc["_id"])
            async for doc in self.files.find({}, {"_id": 1}).sort("uploadDate", -1).skip(KEEP)
        ]
        for name in names:
            if name != keep:
                await self.bucket.delete(name)


def _unpickle(blob: bytes) -> dict[str, Any]:
    # Checked against the pointer's SHA-256 and written by routing of this very
    # environment (see the module's note on trust).
    content = pickle.loads(blob)  # noqa: S301
    assert isinstance(content, dict)
    return content
