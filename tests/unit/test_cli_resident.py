"""``sotong resident ID correct|rate``: what the CLI sends intake (a stand-in that records)."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from sotong import cli


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def post(url: str, *, json: dict[str, Any], timeout: float) -> httpx.Response:
        del timeout
        bodies.append({"url": url, **json})
        request = httpx.Request("POST", url)
        return httpx.Response(202, json={"command_id": "x"}, request=request)

    monkeypatch.setattr(httpx, "post", post)  # what sotong.cli calls
    return bodies


def test_correct_sends_the_fields_given(sent: list[dict[str, Any]]) -> None:
    code = cli.main(["resident", "c-1", "correct", "--token", "t", "--dong", "청라3동"])
    assert code == 0
    assert sent == [
        {
            "url": f"{cli.INTAKE_URL}/v1/complaints/c-1/resident-actions",
            "action": "correct",
            "token": "t",
            "dong": "청라3동",
        }
    ]


def test_rate_sends_the_rating_as_a_number(sent: list[dict[str, Any]]) -> None:
    argv = ["resident", "c-1", "rate", "--token", "t", "--rating", "4", "--comment", "좋아요"]
    assert cli.main(argv) == 0
    assert sent[0]["rating"] == 4
    assert sent[0]["comment"] == "좋아요"


def test_correct_uploads_each_photo_then_sends_their_ids(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        calls.append((url, kwargs))
        request = httpx.Request("POST", url)
        if url.endswith("/v1/photos"):
            return httpx.Response(201, json={"photo_id": f"p{len(calls)}"}, request=request)
        return httpx.Response(202, json={"command_id": "x"}, request=request)

    monkeypatch.setattr(httpx, "post", post)
    first, second = tmp_path / "a.jpg", tmp_path / "b.png"
    first.write_bytes(b"\xff\xd8\xff jpeg")
    second.write_bytes(b"\x89PNG png")
    argv = ["resident", "c-1", "correct", "--token", "t"]

    assert cli.main([*argv, "--photo", str(first), "--photo", str(second)]) == 0

    uploads = [kwargs["files"]["file"] for url, kwargs in calls if url.endswith("/v1/photos")]
    assert uploads == [("a.jpg", b"\xff\xd8\xff jpeg"), ("b.png", b"\x89PNG png")]
    url, sent = calls[-1]
    assert url.endswith("/v1/complaints/c-1/resident-actions")
    assert sent["json"] == {"action": "correct", "token": "t", "photos": ["p1", "p2"]}
    assert cli.main([*argv, "--photo", str(tmp_path / "missing.jpg")]) == 2
