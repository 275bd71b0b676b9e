"""The kit's abuse limits (``services.ratelimit``): token buckets with bounded memory and an
injectable clock, who a request counts against, and the 429 a FastAPI app answers."""

import httpx
import pytest
from fastapi import APIRouter, Depends
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.http import service_app
from services.keys import ApiKeys
from services.ratelimit import (
    Buckets,
    EndUsers,
    Limits,
    Rate,
    RateLimitMetrics,
    RouteLimit,
    RouteLimits,
    address_key,
    phone_digest,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = Buckets(Rate(3, 60), clock=clock)
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, True]
    refused = buckets.take("a")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(20.0)  # one token per 20 s
    assert refused.retry_after_seconds == 20
    assert refused.rate == Rate(3, 60)
    assert buckets.take("b").allowed  # another key has its own bucket


def test_a_refused_request_takes_nothing_and_the_bucket_refills_to_its_size() -> None:
    clock = Clock()
    buckets = Buckets(Rate(2, 60), clock=clock)
    buckets.take("a")
    buckets.take("a")
    for _ in range(10):
        assert not buckets.take("a").allowed
    clock.now += 30  # exactly one token back, however many were refused meanwhile
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed
    clock.now += 3600  # a long idle refills to the size, not beyond
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_by_forgetting_the_least_recently_seen_key() -> None:
    clock = Clock()
    buckets = Buckets(Rate(1, 60), max_keys=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # "a" seen again: "b" is now the least recent
    buckets.take("c")
    assert len(buckets) == 2
    assert set(buckets._buckets) == {"a", "c"}
    assert buckets.take("b").allowed  # forgotten, so starting afresh


def test_several_limits_take_only_when_all_allow_and_wait_for_the_slowest() -> None:
    clock = Clock()
    limits = Limits.of([Rate(2, 60), Rate(3, 3600)], clock=clock)
    assert [limits.take("a").allowed for _ in range(3)] == [True, True, False]
    clock.now += 60
    assert limits.take("a").allowed  # the third of the hour
    clock.now += 60
    refused = limits.take("a")  # the minute allows it, the hour does not
    assert not refused.allowed
    assert refused.rate == Rate(3, 3600)
    assert refused.retry_after == pytest.approx(3600 / 3 - 120, abs=1)
    # the minute's bucket was not charged for the refused request
    assert limits.buckets[0].peek("a").allowed


def test_a_rate_must_allow_something() -> None:
    with pytest.raises(ValueError, match="count"):
        Rate(0, 60)
    with pytest.raises(ValueError, match="period"):
        Rate(1, 0)


def test_the_phone_digest_is_keyed_and_ignores_formatting() -> None:
    one = phone_digest(b"k1", "010-1234-5678")
    assert one == phone_digest(b"k1", "01012345678")
    assert one != phone_digest(b"k2", "010-1234-5678")
    assert one is not None
    assert "5678" not in one
    assert phone_digest(b"k1", "--") is None


CHANNELS = ApiKeys({"web": SecretStr("portal-credential")})
KEYS = {"X-Api-Key": "portal-credential"}


def app_with(limits: RouteLimits, registry: CollectorRegistry) -> httpx.AsyncClient:
    from contextlib import asynccontextmanager
    from typing import Any

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        yield

    async def ready(_: Any) -> dict[str, bool]:
        return {}

    app = service_app(
        name="test", title="t", description="d", lifespan=lifespan, registry=registry,
        readiness=ready,
    )  # fmt: skip
    router = APIRouter()

    @router.post("/things/{thing}")
    async def limited(thing: str) -> dict[str, str]:
        return {"thing": thing}

    @router.get("/things/{thing}")
    async def free(thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.include_router(router, dependencies=[Depends(limits)])
    transport = httpx.ASGITransport(app, client=("203.0.113.7", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def limited_app(
    registry: CollectorRegistry, *, per_credential: Limits | None = None
) -> httpx.AsyncClient:
    clock = Clock()
    limits = RouteLimits(
        {
            ("POST", "/things/{thing}"): RouteLimit(
                "filing",
                Limits.of([Rate(2, 60)], clock=clock),
                per_credential=per_credential,
                what="filings",
            )
        },
        end_users=EndUsers(CHANNELS),
        metrics=RateLimitMetrics(registry, "test"),
    )
    return app_with(limits, registry)


async def test_a_burst_from_one_address_is_refused_in_the_error_shape_with_retry_after() -> None:
    registry = CollectorRegistry()
    async with limited_app(registry) as http:
        codes = [(await http.post("/things/x")).status_code for _ in range(2)]
        refused = await http.post("/things/y")  # the same budget on every path of the route
        assert codes == [200, 200]
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"
        assert refused.headers["Cache-Control"] == "no-store"  # the kit's headers, too
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["message"].startswith("client: too many filings (at most 2 a minute")
        assert "203.0.113.7" not in refused.text
        assert (await http.get("/things/x")).status_code == 200  # a route not limited
    refusals = registry.get_sample_value(
        "sotong_rate_limited_total", {"service": "test", "limit": "filing"}
    )
    assert refusals == 1
    metrics = "".join(str(s) for m in registry.collect() for s in m.samples)
    assert "203.0.113.7" not in metrics


async def test_x_end_user_is_trusted_only_with_a_valid_credential() -> None:
    async with limited_app(CollectorRegistry()) as http:
        # without a credential the header is ignored: inventing end users does not help
        spoofed = [
            (await http.post("/things/x", headers={"X-End-User": f"u{i}"})).status_code
            for i in range(3)
        ]
        assert spoofed[-1] == 429
        wrong = await http.post(
            "/things/x", headers={"X-Api-Key": "not-it", "X-End-User": "someone-new"}
        )
        assert wrong.status_code == 429  # a wrong credential is no credential
        # a channel's end users each have their own budget, apart from the channel's address
        for user in ("resident-1", "resident-2"):
            codes = [
                (await http.post("/things/x", headers=KEYS | {"X-End-User": user})).status_code
                for _ in range(3)
            ]
            assert codes[:2] == [200, 200]
            assert codes[2] == 429


async def test_a_credential_naming_no_end_user_has_the_credentials_own_limit() -> None:
    async with limited_app(CollectorRegistry()) as http:
        codes = [(await http.post("/things/x", headers=KEYS)).status_code for _ in range(5)]
        assert codes == [200] * 5  # no per-credential limit configured: not limited
    clock = Clock()
    per_key = Limits.of([Rate(3, 60)], clock=clock)
    async with limited_app(CollectorRegistry(), per_credential=per_key) as http:
        codes = [(await http.post("/things/x", headers=KEYS)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = await http.post("/things/x", headers=KEYS)
        assert refused.json()["error"]["message"].startswith("key: too many filings")


def test_a_department_key_never_names_an_end_user_when_not_trusted_to() -> None:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"x-api-key", b"portal-credential"), (b"x-end-user", b"u1")],
        "client": ("198.51.100.1", 1),
    }
    trusted = EndUsers(CHANNELS).of(Request(scope))
    assert (trusted.channel, trusted.end_user) == ("web", "u1")
    assert trusted.per_end_user
    per_key = EndUsers(CHANNELS, trust_end_user=False).of(Request(scope))
    assert (per_key.channel, per_key.end_user) == ("web", None)
    assert not per_key.per_end_user
    anonymous = EndUsers(None).of(Request(scope))
    assert anonymous.key == "address\x00198.51.100.1"


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("testclient") == "testclient"
