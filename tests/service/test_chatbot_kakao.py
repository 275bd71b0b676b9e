"""The KakaoTalk skill over real HTTP, against real intake, routing and tracker processes
on the embedded broker and database: a resident describes a problem in KakaoTalk, routing
names the department, one confirming quick reply files it through intake with channel
``kakao``, and the handler reads the chat in the tracker's department view."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from portal.chatbot import Chatbot, IntakeFiler, RoutingClassifier, Sessions, kakao_router
from portal.chatbot.retrieval import Morphemes
from routing.classifier import Classifier
from schemas.catalogue import catalogue
from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends

# the first test pays for starting the stack (and the classifier's warm-up)
pytestmark = pytest.mark.timeout(300)

KEYS = {code: f"chatbot-test-key-{code}" for code in catalogue().codes}


@dataclass
class Services:
    procs: dict[str, ServiceProcess]

    def url(self, name: str) -> str:
        return self.procs[name].url


@pytest.fixture(scope="module")
def services(
    backends: Backends,
    tmp_path_factory: pytest.TempPathFactory,
    trained_classifier: Classifier,  # routing loads the artifact the session fitted
) -> Iterator[Services]:
    root: Path = tmp_path_factory.mktemp("chatbot")
    unique = uuid.uuid4().hex[:10]
    env = backends.env(database=f"chatbot_{unique}", topic_prefix=f"cb{unique}.") | {
        "SOTONG_INTAKE_API_KEYS": json.dumps(KEYS),
        "SOTONG_TRACKER_API_KEYS": json.dumps(KEYS),
        "SOTONG_INTAKE_RELAY_INTERVAL_SECONDS": "0.5",
        "SOTONG_ROUTING_RELAY_INTERVAL_SECONDS": "0.5",
    }
    procs = localstack.start_services(env, root / "logs", names=["intake", "routing", "tracker"])
    try:
        # routing loads its tokenizer on the first text it classifies (seconds): before
        # the skill's deadline meets it
        warm = httpx.post(
            f"{procs['routing'].url}/v1/classify", json={"texts": ["가로등"]}, timeout=60
        )
        assert warm.status_code == 200, warm.text
        yield Services(procs)
    finally:
        for proc in procs.values():
            proc.child.stop()


@pytest.fixture(scope="module")
def morphemes() -> Morphemes:
    return Morphemes()


@pytest.fixture
async def skill(services: Services, morphemes: Morphemes) -> AsyncIterator[str]:
    """The portal's Kakao skill router, served by uvicorn on a free port."""
    async with httpx.AsyncClient() as client:
        # generous timeouts: this test is about what happens, not how fast (sotong bench)
        classify = RoutingClassifier(client, services.url("routing"), timeout=30)
        bot = Chatbot.load(classify=classify, morphemes=morphemes)
        filer = IntakeFiler(client, services.url("intake"), timeout=30)
        app = FastAPI()
        app.include_router(kakao_router(bot, filer, sessions=Sessions(), deadline_seconds=20))
        port = localstack.free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
        )
        serving = asyncio.create_task(server.serve())
        try:
            for _ in range(200):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            yield f"http://127.0.0.1:{port}/kakao/skill"
        finally:
            server.should_exit = True
            await serving


def payload(utterance: str, user: str) -> dict[str, Any]:
    return {"userRequest": {"utterance": utterance, "user": {"id": user, "type": "botUserKey"}}}


def text_of(answer: dict[str, Any]) -> str:
    text: str = answer["template"]["outputs"][0]["simpleText"]["text"]
    return text


async def until(probe: Any, what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_kakao_complaint_reaches_the_department_with_its_chat(
    skill: str, services: Services
) -> None:
    user = f"kakao-{uuid.uuid4().hex}"
    complaint = "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"
    async with httpx.AsyncClient(timeout=30) as http:
        offer = (await http.post(skill, json=payload(complaint, user))).json()
        assert offer["version"] == "2.0"
        assert "자원순환과" in text_of(offer)
        assert [q["messageText"] for q in offer["template"]["quickReplies"]] == [
            "네, 접수할게요",
            "아니요",
        ]

        filed = (await http.post(skill, json=payload("네, 접수할게요", user))).json()
        receipt = text_of(filed).split("접수번호: ")[1].split("\n")[0]

        found = await until(
            lambda: queued(http, services, receipt), "the complaint in the department's queue"
        )
        view = await until(lambda: department_view(http, services, found), "routing to assign it")

    assert view["channel"] == "kakao"
    assert view["body"] == complaint
    assert view["department"]["code"] == "resource-circulation"
    assert [t["role"] for t in view["transcript"]] == ["resident", "bot", "resident"]
    assert view["transcript"][0]["text"] == complaint
    assert user not in json.dumps(view)


async def test_a_question_is_answered_from_the_knowledge_base_within_kakaos_limits(
    skill: str,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = (await http.post(skill, json=payload("종량제봉투 어디서 사요?", "u-2"))).json()

    assert "판매소" in text_of(answer)
    assert len(text_of(answer)) <= 1000


async def queued(http: httpx.AsyncClient, services: Services, receipt: str) -> str | None:
    response = await http.get(
        f"{services.url('tracker')}/v1/departments/resource-circulation/queue",
        params={"limit": 100},
        headers={"X-Api-Key": KEYS["resource-circulation"]},
    )
    items = response.json().get("items", []) if response.status_code == 200 else []
    return next((i["complaint_id"] for i in items if i["receipt_number"] == receipt), None)


async def department_view(
    http: httpx.AsyncClient, services: Services, complaint_id: str
) -> dict[str, Any] | None:
    response = await http.get(
        f"{services.url('tracker')}/v1/departments/resource-circulation/complaints/{complaint_id}",
        headers={"X-Api-Key": KEYS["resource-circulation"]},
    )
    view: dict[str, Any] = response.json()
    return view if response.status_code == 200 else None
