"""intake's abuse limits in memory (issue 11 §11, §12): filings per end user, filings per
phone number per day, commands per department key; X-End-User only from a credential."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from intake.app import create_app
from intake.settings import IntakeSettings
from schemas import topics
from services.runtime import Runtime
from tests.fakes.intake import (
    InMemoryConfirmedPhones,
    InMemoryContactCodes,
    InMemoryIdempotencyStore,
    InMemoryPhotoStore,
    InMemorySubmissionStore,
    RecordingPublish,
)

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # 05:00 on 12-02 in Seoul
PORTAL = "portal-web-credential"
CALL_CENTRE = "call-centre-credential"
KEYS = {"roads": "roads-key", "parks": "parks-key"}
PHONE = "010-2345-6789"


def body(**changes: Any) -> dict[str, Any]:
    return {"channel": "web", "body": "석남동 골목 가로등이 꺼져 있어요"} | changes


@dataclass
class Intake:
    http: httpx.AsyncClient
    store: InMemorySubmissionStore
    publish: RecordingPublish
    registry: CollectorRegistry
    now: list[datetime]

    async def file(self, headers: dict[str, str] | None = None, **changes: Any) -> httpx.Response:
        return await self.http.post("/v1/complaints", json=body(**changes), headers=headers)

    def refused(self, limit: str) -> float | None:
        return self.registry.get_sample_value(
            "sotong_rate_limited_total", {"service": "intake", "limit": limit}
        )


def settings(**changes: Any) -> IntakeSettings:
    return IntakeSettings(
        api_keys={code: SecretStr(key) for code, key in KEYS.items()},
        channel_keys={"web": SecretStr(PORTAL), "call_center": SecretStr(CALL_CENTRE)},
        phone_hash_key=SecretStr("a-phone-hash-key-for-tests"),
        **changes,
    )


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture
async def intake(limits: dict[str, Any]) -> AsyncIterator[Intake]:
    store, publish, now = InMemorySubmissionStore(), RecordingPublish(), [NOW]
    built = settings(**limits)
    runtime = Runtime.build("intake", built)
    app = create_app(
        built,
        store=store,
        publish=publish,
        clock=lambda: now[0],
        runtime=runtime,
        idempotency_store=InMemoryIdempotencyStore(),
        photo_store=InMemoryPhotoStore(),
        contact_store=InMemoryContactCodes(),
        recovery_store=InMemoryContactCodes(),
        confirmed_phones=InMemoryConfirmedPhones(),
    )
    transport = httpx.ASGITransport(app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Intake(http, store, publish, runtime.registry, now)


def portal(end_user: str) -> dict[str, str]:
    return {"X-Api-Key": PORTAL, "X-End-User": end_user}


@pytest.mark.parametrize("limits", [{"filings_per_minute": 2}])
async def test_one_address_files_a_few_a_minute_then_hears_when_to_retry(intake: Intake) -> None:
    codes = [(await intake.file()).status_code for _ in range(2)]
    refused = await intake.file()
    assert codes == [201, 201]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 30
    error = refused.json()["error"]
    assert (error["code"], error["message"].split(":")[0]) == ("rate_limited", "client")
    assert len(intake.publish.on(topics.FILED)) == 2  # the refused one filed nothing
    assert intake.refused("filing") == 1


@pytest.mark.parametrize("limits", [{"filings_per_minute": 2}])
async def test_x_end_user_counts_only_from_a_channel_with_its_credential(intake: Intake) -> None:
    # a stranger inventing end users is still one address
    spoofed = [(await intake.file({"X-End-User": f"someone-{i}"})).status_code for i in range(3)]
    assert spoofed == [201, 201, 429]
    # the portal's residents each have their own budget, whatever the portal's address
    for resident in ("198.51.100.1", "198.51.100.2"):
        codes = [
            (await intake.file(portal(resident), channel_ref=f"portal-{resident}-{i}")).status_code
            for i in range(3)
        ]
        assert codes == [201, 201, 429]


@pytest.mark.parametrize("limits", [{"filings_per_minute": 5, "filings_per_hour": 2}])
async def test_the_hourly_limit_holds_when_the_minute_allows(intake: Intake) -> None:
    codes = [(await intake.file(portal("r"), channel_ref=f"h-{i}")).status_code for i in range(3)]
    assert codes == [201, 201, 429]
    refused = await intake.file(portal("r"), channel_ref="h-3")
    assert refused.json()["error"]["message"].startswith(
        "client: too many filings (at most 2 an hour"
    )
    assert int(refused.headers["Retry-After"]) == 1800  # the hour's refill, not the minute's


@pytest.mark.parametrize("limits", [{"channel_filings_per_minute": 3}])
async def test_a_credential_naming_no_end_user_has_a_limit_of_its_own(intake: Intake) -> None:
    centre = {"X-Api-Key": CALL_CENTRE}
    codes = [
        (await intake.file(centre, channel="call_center", channel_ref=f"cc-{i}")).status_code
        for i in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    refused = await intake.file(centre, channel="call_center", channel_ref="cc-4")
    assert refused.json()["error"]["message"].startswith("key: too many filings")
    assert (await intake.file()).status_code == 201  # an anonymous web filer is apart


@pytest.mark.parametrize("limits", [{"filings_per_day_per_phone": 2}])
async def test_one_phone_number_is_named_in_a_few_filings_a_day(intake: Intake) -> None:
    resident = {"phone": PHONE}
    first = await intake.file(portal("a"), channel_ref="p-1", resident=resident)
    # the same number written differently, from another end user
    second = await intake.file(portal("b"), channel_ref="p-2", resident={"phone": "01023456789"})
    assert (first.status_code, second.status_code) == (201, 201)
    refused = await intake.file(portal("c"), channel_ref="p-3", resident=resident)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert message.startswith("phone: too many filings with this number (at most 2 a day")
    assert "2345" not in refused.text
    assert "6789" not in refused.text
    # until midnight in Seoul: 05:00 → 19 hours
    assert int(refused.headers["Retry-After"]) == 19 * 3600
    assert intake.refused("phone") == 1
    # another number, or none, is not held back
    other = await intake.file(portal("c"), channel_ref="p-4", resident={"phone": "010-9999-0000"})
    assert other.status_code == 201
    assert (await intake.file(portal("c"), channel_ref="p-5")).status_code == 201
    # kept under a keyed hash and the district's day, never the number
    keys = list(intake.store.phone_days)
    assert len(keys) == 2
    assert all("6789" not in k and k.endswith(":2026-12-02") for k in keys)
    # the next day in Seoul the number may be named again
    intake.now[0] += timedelta(hours=19)
    again = await intake.file(portal("d"), channel_ref="p-6", resident=resident)
    assert again.status_code == 201


@pytest.mark.parametrize("limits", [{"commands_per_minute_per_key": 2}])
async def test_a_department_key_sends_so_many_commands_a_minute(intake: Intake) -> None:
    filed = await intake.file(portal("x"), channel_ref="cmd-1")
    cid = filed.json()["complaint_id"]
    url = f"/v1/complaints/{cid}/commands"
    command = {"action": "start_site_check"}
    roads = {"X-Api-Key": KEYS["roads"]}
    codes = [
        (await intake.http.post(url, json=command, headers=roads)).status_code for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    # an X-End-User does not give a department key a budget per end user
    spread = await intake.http.post(url, json=command, headers=roads | {"X-End-User": "e"})
    assert spread.status_code == 429
    assert spread.json()["error"]["message"].startswith("key: too many commands")
    parks = {"X-Api-Key": KEYS["parks"]}
    assert (await intake.http.post(url, json=command, headers=parks)).status_code == 202
    # no key: refused for that (401), not counted against anyone's budget
    assert (await intake.http.post(url, json=command)).status_code == 401
    assert intake.refused("commands") == 2


OPEN311_KEY = "open311-app-key"
OPEN311_FORM = {
    "api_key": OPEN311_KEY,
    "service_code": "waste-bulky",
    "lat": "37.5452",
    "long": "126.6760",
    "description": "집 앞에 소파를 내놓았어요",
    "attribute[item_type]": "sofa",
    "attribute[item_count]": "1",
    "attribute[dong]": "청라1동",
}


@pytest.mark.parametrize(
    "limits",
    [
        {
            "open311_keys": {"app": SecretStr(OPEN311_KEY)},
            "filings_per_minute": 2,
            "channel_filings_per_minute": 3,
            "filings_per_day_per_phone": 1,
        }
    ],
)
async def test_open311_posts_are_limited_per_app_and_end_user_in_its_error_shape(
    intake: Intake,
) -> None:
    async def post(headers: dict[str, str] | None = None, **form: str) -> httpx.Response:
        return await intake.http.post(
            "/open311/v2/requests.json", data=OPEN311_FORM | form, headers=headers
        )

    # the app names its users: each has the per-resident budget
    for user in ("u1", "u2"):
        codes = [(await post({"X-End-User": user})).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
    refused = await post({"X-End-User": "u1"})
    [error] = refused.json()  # GeoReport's shape: [{"code", "description"}]
    assert error["code"] == 429
    assert error["description"].startswith("client: too many filings")
    assert int(refused.headers["Retry-After"]) > 0
    # naming nobody, the app as a whole has the channel's budget
    codes = [(await post()).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    assert (await post()).json()[0]["description"].startswith("key: ")
    # a wrong api_key is refused as before, whatever it claims
    assert (await post({"X-End-User": "u9"}, api_key="wrong")).status_code == 403
    # the phone's daily count covers Open311 too
    assert (await post({"X-End-User": "p1"}, phone=PHONE)).status_code == 201
    again = await post({"X-End-User": "p2"}, phone=PHONE)
    assert again.status_code == 429
    assert again.json()[0]["description"].startswith("phone: ")


@pytest.mark.parametrize("limits", [{"open311_reads_per_minute": 2}])
async def test_open311_reads_are_limited_per_address_in_georeport_shape(intake: Intake) -> None:
    codes = [(await intake.http.get("/open311/v2/requests/x.json")).status_code for _ in range(2)]
    refused = await intake.http.get("/open311/v2/tokens/t.xml")  # one budget for the reads
    assert 429 not in codes
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["content-type"].startswith("text/xml")
    assert b"<errors><error><code>429</code><description>client: too many" in refused.content
    # the discovery and service list are not tracker reads: not limited
    assert (await intake.http.get("/open311/v2/services.json")).status_code == 200
    # the rest of intake still answers in the kit's shape
    bad = await intake.http.post("/v1/complaints", json={})
    assert bad.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("limits", [{"photos_per_minute": 2}])
async def test_photo_uploads_are_limited_per_end_user(intake: Intake) -> None:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")

    async def upload(headers: dict[str, str] | None = None) -> int:
        files = {"file": ("p.png", out.getvalue(), "image/png")}
        return (await intake.http.post("/v1/photos", files=files, headers=headers)).status_code

    assert [await upload() for _ in range(3)] == [201, 201, 429]
    assert await upload(portal("a resident")) == 201  # the portal's residents, one by one
    assert intake.refused("photos") == 1


async def filed_with_tokens(intake: Intake, ref: str) -> tuple[str, str]:
    filed = (await intake.file(portal("filer"), channel_ref=ref)).json()
    return filed["complaint_id"], filed["tracking_token"]


@pytest.mark.parametrize(
    "limits", [{"resident_actions_per_minute": 2, "complaint_actions_per_minute": 50}]
)
async def test_resident_actions_are_limited_per_end_user(intake: Intake) -> None:
    cid, token = await filed_with_tokens(intake, "ra-1")
    url = f"/v1/complaints/{cid}/resident-actions"
    rate = {"action": "rate", "token": token, "rating": 4}
    codes = [(await intake.http.post(url, json=rate)).status_code for _ in range(2)]
    # the contact code routes share the budget: one resident, one count
    code = await intake.http.post(
        f"/v1/complaints/{cid}/contact/confirm",
        json={"code": "123456"},
        headers={"X-Tracking-Token": token},
    )
    assert codes == [202, 202]
    assert code.status_code == 429
    error = code.json()["error"]
    assert error["message"].startswith("client: too many resident actions (at most 2 a minute")
    assert token not in code.text
    assert cid not in code.text
    assert int(code.headers["Retry-After"]) == 30
    # another resident behind the portal has a budget of their own
    other = await intake.http.post(url, json=rate, headers=portal("198.51.100.77"))
    assert other.status_code == 202
    assert intake.refused("resident_actions") == 1
    assert len(intake.publish.on(topics.COMMANDS)) == 3


@pytest.mark.parametrize(
    "limits", [{"complaint_actions_per_minute": 3, "resident_actions_per_minute": 50}]
)
async def test_one_complaint_cannot_be_hammered_from_many_addresses(intake: Intake) -> None:
    cid, token = await filed_with_tokens(intake, "ra-2")
    url = f"/v1/complaints/{cid}/resident-actions"
    # guessing the token from ever new end users: each guess still counts for the complaint
    guesses = [
        (
            await intake.http.post(
                url,
                json={"action": "withdraw", "token": f"guess-{i}"},
                headers=portal(f"203.0.113.{i}"),
            )
        ).status_code
        for i in range(4)
    ]
    assert guesses == [404, 404, 404, 429]
    refused = await intake.http.post(
        url, json={"action": "withdraw", "token": token}, headers=portal("203.0.113.200")
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith(
        "complaint: too many actions on this complaint (at most 3 a minute"
    )
    assert cid not in refused.text
    assert intake.refused("complaint_actions") == 2
    # another complaint is not held back, nor is filing
    other, other_token = await filed_with_tokens(intake, "ra-3")
    done = await intake.http.post(
        f"/v1/complaints/{other}/resident-actions",
        json={"action": "withdraw", "token": other_token},
    )
    assert done.status_code == 202
