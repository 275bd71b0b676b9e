"""Photos (issue 14 §3) in memory: intake's HTTP API through ASGI with the fake stores, and
the tracker's real API on its fakes (who is responsible for a complaint)."""

import base64
import io
import re
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pillow_heif
import pytest
from PIL import Image, PngImagePlugin
from pydantic import SecretStr

from intake.app import create_app
from intake.photo_store import StoredPhoto
from intake.photos import PHOTO_ID, Limits, PhotoRefused, new_photo_id, process
from intake.settings import IntakeSettings
from intake.tracker_client import TrackerClient
from schemas import ComplaintFiled, ComplaintState, topics
from schemas.commands import CorrectComplaint
from schemas.events import ComplaintStatusChanged
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemoryPhotoStore,
    InMemorySubmissionStore,
    RecordingPublish,
)
from tests.unit.test_tracker_api import Tracker, running

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
STAFF_KEY = "intake-reads-the-tracker"
ROADS_KEY = "roads-department-key"
PARKS_KEY = "parks-department-key"
GPS_IFD = 0x8825
FILING = {"channel": "web", "body": "석남동 골목 가로등이 사흘째 꺼져 있어요"}
LIMITS = Limits(max_bytes=1024 * 1024, max_pixels=4_000_000, thumbnail_pixels=64)


def jpeg_with_gps(size: tuple[int, int] = (400, 300)) -> bytes:
    """A phone-like JPEG: EXIF with a GPS position (Seoul City Hall), a camera model and a
    rotation, plus an XMP packet and a comment."""
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x0110] = "Galaxy S99"  # Model
    exif[0x0112] = 6  # Orientation: rotated 90° clockwise
    exif[GPS_IFD] = {1: "N", 2: (37.0, 33.0, 58.0), 3: "E", 4: (126.0, 58.0, 41.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"home", xmp=b"<x:xmpmeta>secret</x:xmpmeta>")
    return out.getvalue()


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "37.5665,126.9780")
    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N", 2: (37.0, 33.0, 58.0)}
    out = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 0, 255, 128)).save(out, format="PNG", pnginfo=info, exif=exif)
    return out.getvalue()


def has_metadata(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return (
        bool(exif)
        or bool(exif.get_ifd(GPS_IFD))
        or any(k in image.info for k in ("exif", "xmp", "comment", "Location", "icc_profile"))
    )


# Pure processing


def test_a_jpeg_with_gps_exif_is_kept_without_any_metadata_and_upright() -> None:
    original = jpeg_with_gps()
    assert has_metadata(original)  # the test image does carry what must go
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)

    kept = process(original, LIMITS)

    assert kept.media_type == "image/jpeg"
    assert not has_metadata(kept.data)
    for trace in (b"Galaxy S99", b"secret", b"home"):
        assert trace in original
        assert trace not in kept.data
    assert (kept.width, kept.height) == (300, 400)  # the orientation applied, then dropped
    thumb = Image.open(io.BytesIO(kept.thumbnail))
    assert thumb.format == "JPEG"
    assert max(thumb.size) == 64
    assert not has_metadata(kept.thumbnail)


def test_a_heic_from_a_phone_is_kept_as_a_jpeg_without_its_location() -> None:
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0110] = "iPhone 99"
    exif[GPS_IFD] = {1: "N", 2: (37.0, 33.0, 58.0), 3: "E", 4: (126.0, 58.0, 41.0)}
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (30, 60, 90)).save(out, format="HEIF", exif=exif)
    original = out.getvalue()
    assert original[4:12] == b"ftypheic"
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)

    kept = process(original, LIMITS)

    assert kept.media_type == "image/jpeg"
    assert Image.open(io.BytesIO(kept.data)).format == "JPEG"
    assert (kept.width, kept.height) == (120, 90)
    assert not has_metadata(kept.data)
    assert b"iPhone 99" not in kept.data


def test_a_png_loses_its_text_and_exif_chunks() -> None:
    kept = process(png_with_text(), LIMITS)
    assert kept.media_type == "image/png"
    assert not has_metadata(kept.data)
    assert b"37.5665" not in kept.data
    assert Image.open(io.BytesIO(kept.data)).mode == "RGBA"


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"GIF89a" + bytes(100), 422, "not a JPEG, PNG or HEIC"),
        (b"\xff\xd8\xff\xe0" + bytes(100), 422, "not a readable JPEG"),
        (b"<html>not a photo</html>", 422, "not a JPEG, PNG or HEIC"),
    ],
)
def test_what_is_not_a_photo_we_take_is_refused_by_its_content(
    data: bytes, status: int, reason: str
) -> None:
    with pytest.raises(PhotoRefused) as refused:
        process(data, LIMITS)
    assert (refused.value.status, reason in refused.value.reason) == (status, True)


def test_too_many_bytes_is_413_and_too_many_pixels_422() -> None:
    with pytest.raises(PhotoRefused) as big:
        process(jpeg_with_gps(), Limits(max_bytes=1024, max_pixels=10**6, thumbnail_pixels=64))
    assert big.value.status == 413
    with pytest.raises(PhotoRefused) as wide:
        process(jpeg_with_gps(), Limits(max_bytes=10**6, max_pixels=10_000, thumbnail_pixels=64))
    assert (wide.value.status, "pixels" in wide.value.reason) == (422, True)


# Over HTTP


@dataclass
class Stack:
    http: httpx.AsyncClient
    tracker: Tracker
    publish: RecordingPublish
    photos: InMemoryPhotoStore
    store: InMemorySubmissionStore

    async def upload(self, data: bytes, name: str = "IMG_0001.jpg") -> httpx.Response:
        files = {"file": (name, data, "application/octet-stream")}
        return await self.http.post("/v1/photos", files=files)

    async def file(self, **changes: Any) -> httpx.Response:
        return await self.http.post("/v1/complaints", json=FILING | changes)

    def filed(self) -> list[ComplaintFiled]:
        return [e for e in self.publish.on(topics.FILED) if isinstance(e, ComplaintFiled)]

    async def assign(self, filed: ComplaintFiled, department: str) -> None:
        await self.tracker.deliver(filed)
        await self.tracker.deliver(
            ComplaintStatusChanged(
                complaint_id=filed.complaint_id,
                receipt_number=filed.receipt_number,
                sequence=1,
                from_state=None,
                to_state=ComplaintState.ASSIGNED,
                trigger="assign",
                actor="routing",
                department=department,
                occurred_at=filed.occurred_at + timedelta(minutes=1),
            )
        )


async def stack_with(**changes: Any) -> AsyncIterator[Stack]:
    async with running(staff_api_keys={"intake": SecretStr(STAFF_KEY)}) as tracker:
        publish, photos, store = RecordingPublish(), InMemoryPhotoStore(), InMemorySubmissionStore()
        settings = IntakeSettings(
            api_keys={"roads": SecretStr(ROADS_KEY), "parks": SecretStr(PARKS_KEY)},
            photo_max_bytes=200_000,
            **changes,
        )
        app = create_app(
            settings,
            store=store,
            publish=publish,
            clock=lambda: NOW,
            tracker=TrackerClient(tracker.http, SecretStr(STAFF_KEY)),
            idempotency_store=InMemoryIdempotencyStore(),
            photo_store=photos,
            contact_store=InMemoryContactCodes(),
            recovery_store=InMemoryContactCodes(),
            confirmed_phones=InMemoryConfirmedPhones(),
        )
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield Stack(http, tracker, publish, photos, store)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async for s in stack_with():
        yield s


def refused_field(response: httpx.Response) -> str:
    message: str = response.json()["error"]["message"]
    return message.split(":", 1)[0]


async def test_a_phone_photo_comes_back_to_the_resident_without_its_location(
    stack: Stack,
) -> None:
    uploaded = await stack.upload(jpeg_with_gps())
    assert uploaded.status_code == 201, uploaded.text
    photo = uploaded.json()
    filing = await stack.file(photos=[photo["photo_id"]])
    assert filing.status_code == 201, filing.text
    token = filing.json()["tracking_token"]

    served = await stack.http.get(
        f"/v1/photos/{photo['photo_id']}", headers={"X-Tracking-Token": token}
    )
    thumb = await stack.http.get(
        f"/v1/photos/{photo['photo_id']}/thumbnail", headers={"X-Tracking-Token": token}
    )

    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert "no-store" in served.headers["cache-control"]
    assert not has_metadata(served.content)
    assert Image.open(io.BytesIO(served.content)).getexif().get_ifd(GPS_IFD) == {}
    assert thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320
    [event] = stack.filed()
    assert [p.model_dump() for p in event.photos] == [
        {"photo_id": photo["photo_id"], "content_type": "image/jpeg", "size": photo["size"]}
    ]
    assert len(event.model_dump_json()) < 2000  # references, no bytes


async def test_only_the_resident_and_the_responsible_department_see_a_photo(
    stack: Stack,
) -> None:
    photo_id = (await stack.upload(jpeg_with_gps())).json()["photo_id"]
    assert (await stack.file(photos=[photo_id])).status_code == 201
    [filed] = stack.filed()
    url = f"/v1/photos/{photo_id}"

    assert (await stack.http.get(url)).status_code == 401
    wrong = await stack.http.get(url, headers={"X-Tracking-Token": "not-the-token"})
    assert wrong.status_code == 404
    unassigned = await stack.http.get(url, headers={"X-Api-Key": ROADS_KEY})
    assert unassigned.status_code == 404  # the tracker knows no department for it yet

    await stack.assign(filed, "roads")
    assert (await stack.http.get(url, headers={"X-Api-Key": ROADS_KEY})).status_code == 200
    assert (await stack.http.get(url, headers={"X-Api-Key": PARKS_KEY})).status_code == 403
    assert (await stack.http.get(url, headers={"X-Api-Key": "nobody"})).status_code == 401
    public = await stack.http.get(f"{url}/public")
    assert public.status_code == 404  # Open311 media is off unless the district allows it


async def test_a_photo_not_attached_to_a_filing_is_served_to_nobody(stack: Stack) -> None:
    photo_id = (await stack.upload(jpeg_with_gps())).json()["photo_id"]
    response = await stack.http.get(f"/v1/photos/{photo_id}", headers={"X-Api-Key": ROADS_KEY})
    assert response.status_code == 404


async def test_uploads_are_refused_naming_the_field(stack: Stack) -> None:
    text = await stack.upload(b"just text, named like a photo", name="photo.jpg")
    assert (text.status_code, refused_field(text)) == (422, "file")
    noise = Image.effect_noise((600, 600), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 200_000
    big = await stack.upload(out.getvalue(), name="big.png")
    assert (big.status_code, refused_field(big)) == (413, "file")
    json_body = await stack.http.post("/v1/photos", json={"file": "x"})
    assert (json_body.status_code, refused_field(json_body)) == (422, "file")


async def test_a_filing_names_only_photos_it_may_attach(stack: Stack) -> None:
    ids = [(await stack.upload(jpeg_with_gps())).json()["photo_id"] for _ in range(4)]

    too_many = await stack.file(photos=ids)
    unknown = await stack.file(photos=["A" * 22])
    fine = await stack.file(photos=ids[:3])
    taken = await stack.file(photos=[ids[0]])

    assert (too_many.status_code, refused_field(too_many)) == (422, "photos")
    assert (unknown.status_code, refused_field(unknown)) == (422, "photos")
    assert fine.status_code == 201
    assert (taken.status_code, refused_field(taken)) == (422, "photos")
    assert [len(e.photos) for e in stack.filed()] == [3]


async def test_open311_gives_the_first_photo_as_media_url_where_allowed() -> None:
    async for stack in stack_with(open311_media_urls=True, public_url="https://minwon.example"):
        photo_id = (await stack.upload(jpeg_with_gps())).json()["photo_id"]
        assert (await stack.file(photos=[photo_id], service_code="road-repair")).status_code == 201
        [filed] = stack.filed()
        await stack.assign(filed, "roads")

        answer = await stack.http.get(f"/open311/v2/requests/{filed.complaint_id}.json")

        assert answer.status_code == 200, answer.text
        assert answer.json()[0]["media_url"] == (
            f"https://minwon.example/v1/photos/{photo_id}/public"
        )
        public = await stack.http.get(f"/v1/photos/{photo_id}/public")
        assert public.status_code == 200
        assert not has_metadata(public.content)


# Photos added by a correction (정정: 사진 추가, issue 12)


async def correct(stack: Stack, complaint_id: str, token: str, **body: Any) -> httpx.Response:
    return await stack.http.post(
        f"/v1/complaints/{complaint_id}/resident-actions",
        json={"action": "correct", "token": token} | body,
    )


async def test_a_correction_attaches_photos_the_resident_and_department_then_see(
    stack: Stack,
) -> None:
    first = (await stack.upload(jpeg_with_gps())).json()["photo_id"]
    filing = (await stack.file(photos=[first])).json()
    added = [(await stack.upload(png_with_text())).json() for _ in range(2)]
    ids = [p["photo_id"] for p in added]
    url = f"/v1/photos/{ids[0]}"
    token = {"X-Tracking-Token": filing["tracking_token"]}
    assert (await stack.http.get(url, headers=token)).status_code == 404  # not attached yet

    answer = await correct(stack, filing["complaint_id"], filing["tracking_token"], photos=ids)

    assert answer.status_code == 202, answer.text
    [command] = stack.publish.on(topics.COMMANDS)
    assert isinstance(command, CorrectComplaint)
    assert [p.model_dump() for p in command.photos] == [
        {"photo_id": p["photo_id"], "content_type": "image/png", "size": p["size"]} for p in added
    ]
    assert (command.address, command.dong, command.title) == (None, None, None)
    served = await stack.http.get(url, headers=token)
    assert served.status_code == 200
    assert not has_metadata(served.content)
    [filed] = stack.filed()
    await stack.assign(filed, "roads")
    assert (await stack.http.get(url, headers={"X-Api-Key": ROADS_KEY})).status_code == 200
    assert (await stack.http.get(url, headers={"X-Api-Key": PARKS_KEY})).status_code == 403


async def test_a_correction_names_only_photos_it_may_attach_within_the_limit(
    stack: Stack,
) -> None:
    mine = [(await stack.upload(jpeg_with_gps())).json()["photo_id"] for _ in range(2)]
    filing = (await stack.file(photos=mine)).json()
    theirs_photo = (await stack.upload(jpeg_with_gps())).json()["photo_id"]
    assert (await stack.file(photos=[theirs_photo])).status_code == 201
    fresh = [(await stack.upload(jpeg_with_gps())).json()["photo_id"] for _ in range(2)]
    cid, token = filing["complaint_id"], filing["tracking_token"]

    over = await correct(stack, cid, token, photos=fresh)
    theirs = await correct(stack, cid, token, photos=[theirs_photo])
    unknown = await correct(stack, cid, token, photos=["B" * 22])
    malformed = await correct(stack, cid, token, photos=["../../etc/passwd"])
    empty = await correct(stack, cid, token, photos=[])
    wrong_token = await correct(stack, cid, "not-the-token", photos=fresh[:1])

    for refused in (over, theirs, unknown):
        assert (refused.status_code, refused_field(refused)) == (422, "photos"), refused.text
    assert (malformed.status_code, refused_field(malformed)) == (422, "photos.0")
    assert "at most 3 per complaint (2 attached already)" in over.json()["error"]["message"]
    assert empty.status_code == 422
    assert wrong_token.status_code == 404
    assert stack.publish.on(topics.COMMANDS) == []
    for photo_id in fresh:  # nothing refused was attached: still anyone's to file, or swept
        assert (await stack.photos.find([photo_id]))[photo_id].submission_id is None

    fits = await correct(stack, cid, token, photos=fresh[:1])
    again = await correct(stack, cid, token, photos=[*fresh[:1], *mine])  # a retry: counted once
    assert (fits.status_code, again.status_code) == (202, 202)
    full = await correct(stack, cid, token, photos=fresh[1:])
    assert (full.status_code, refused_field(full)) == (422, "photos")


@pytest.fixture
async def two_per_complaint() -> AsyncIterator[Stack]:
    async for s in stack_with(photos_per_complaint=2):
        yield s


async def test_a_correction_racing_past_the_limit_is_undone(two_per_complaint: Stack) -> None:
    """Two corrections that each fit alone but not together: the one that counts again
    after attaching finds too many, detaches its own and is refused."""
    stack = two_per_complaint
    filing = (await stack.file()).json()
    ids = [(await stack.upload(jpeg_with_gps())).json()["photo_id"] for _ in range(3)]
    submission = await stack.store.submission_of(filing["complaint_id"])
    assert submission is not None
    counted = stack.photos.find

    async def racer_attaches_meanwhile(photo_ids: Collection[str]) -> dict[str, StoredPhoto]:
        for racer in ids[:2]:  # after this correction counted, before it attaches
            await stack.photos.attach(racer, submission, replacing=None)
        return await counted(photo_ids)

    stack.photos.find = racer_attaches_meanwhile  # type: ignore[method-assign]

    late = await correct(stack, filing["complaint_id"], filing["tracking_token"], photos=ids[2:])

    assert (late.status_code, refused_field(late)) == (422, "photos")
    assert (await counted([ids[2]]))[ids[2]].submission_id is None
    assert sorted(await stack.photos.attached_to(submission)) == sorted(ids[:2])


def test_photo_ids_are_unguessable_128_random_bits() -> None:
    ids = {new_photo_id() for _ in range(2000)}
    assert len(ids) == 2000
    for photo_id in ids:
        assert re.fullmatch(PHOTO_ID, photo_id)
        assert len(base64.urlsafe_b64decode(photo_id + "==")) == 16
