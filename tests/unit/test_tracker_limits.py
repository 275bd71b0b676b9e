"""The tracker's public endpoints are limited per caller: a client address, or the end user
a channel with a credential names (the portal's residents); department and staff reads are
not counted against it."""

from pydantic import SecretStr

from tests.unit.test_tracker_api import running

PORTAL = "portal-reads-credential"


async def test_a_residents_reads_share_one_budget_per_address_and_get_429_beyond() -> None:
    async with running(public_per_minute=3) as tracker:
        codes = [(await tracker.view("no-such")).status_code for _ in range(2)]
        mine = await tracker.http.get("/v1/residents/me/complaints")
        refused = await tracker.view("no-such")
        assert codes == [404, 404]
        assert mine.status_code == 401  # counted, and answered as before
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "20"
        assert refused.json()["error"]["message"].startswith("client: too many requests")
        # department and staff endpoints are not the residents' budget
        assert (await tracker.get("/v1/departments/roads/queue")).status_code == 401
        assert tracker.sample("sotong_rate_limited_total", service="tracker", limit="client") == 1


async def test_the_portal_names_its_residents_and_a_stranger_cannot() -> None:
    async with running(public_per_minute=2, channel_keys={"web": SecretStr(PORTAL)}) as tracker:

        async def read(headers: dict[str, str]) -> int:
            return (await tracker.http.get("/v1/complaints/x", headers=headers)).status_code

        for resident in ("198.51.100.1", "198.51.100.2"):
            named = {"X-Api-Key": PORTAL, "X-End-User": resident}
            assert [await read(named) for _ in range(3)] == [404, 404, 429]
        spoofed = [await read({"X-End-User": f"made-up-{i}"}) for i in range(3)]
        assert spoofed == [404, 404, 429]
        # the credential without an end user is not limited as a resident
        assert [await read({"X-Api-Key": PORTAL}) for _ in range(4)] == [404] * 4
