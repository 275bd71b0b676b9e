"""The resilience suite's report logic: bars, known gaps, counting and canary scanning."""

import json
from pathlib import Path

import pytest

from sotong.resilience.pii import resident_registration_number
from sotong.resilience.poison import Sent, canary_verdict
from sotong.resilience.report import (
    Canary,
    Report,
    Scenario,
    Status,
    canary_table,
    is_error_shape,
    leaks,
    outbox_lines,
    percentile,
    repeated,
    resident_message_duplicates,
)
from sotong.resilience.run import SHORT, Parameters, parameters_from, register


def test_a_check_passes_at_its_bar_and_fails_above_it() -> None:
    scenario = Scenario("kill -9 under load")
    at = scenario.check("lost", 0)
    above = scenario.check("duplicates", 2, evidence=["a: 2", "b: 2"])
    assert at.status is Status.PASS
    assert above.status is Status.FAIL
    assert above.as_json()["evidence"] == ["a: 2", "b: 2"]
    assert above.as_json()["bar"] == "<= 0"


def test_a_known_gap_is_reported_but_does_not_fail_the_run() -> None:
    report = Report(mode="short", started_at="t0")
    scenario = Scenario("isolation matrix")
    scenario.check("tokens handed to a second client", 2, known_gap="issue 11 §1")
    report.scenarios.append(scenario)
    assert report.ok
    assert [c.status for c in report.known_gaps()] == [Status.KNOWN_GAP]
    body = report.as_json()
    assert body["counts"] == {"known_gap": 1}
    assert body["scenarios"][0]["checks"][0]["known_gap"] == "issue 11 §1"


def test_a_met_known_gap_is_simply_a_pass() -> None:
    scenario = Scenario("pii")
    assert scenario.check("free text in webhooks", 0, known_gap="§4").status is Status.PASS


def test_a_failure_or_an_unfinished_scenario_fails_the_run() -> None:
    report = Report(mode="full", started_at="t0")
    broken = Scenario("fuzzing", error="ReadTimeout: tracker")
    report.scenarios.append(broken)
    assert not report.ok
    report.scenarios = [Scenario("poison")]
    report.scenarios[0].check("canaries not processed", 1, evidence=["filed/deep_json"])
    assert not report.ok
    assert [c.name for c in report.failures()] == ["canaries not processed"]


def test_evidence_is_capped_and_says_how_much_was_left_off() -> None:
    scenario = Scenario("fuzz")
    check = scenario.check("5xx", 25, evidence=[f"GET /x/{i} → 500" for i in range(25)])
    body = check.as_json()
    assert len(body["evidence"]) == 20
    assert body["evidence_left_off"] == 5


def test_the_summary_names_every_check_and_spells_out_failures(tmp_path: Path) -> None:
    report = Report(mode="short", started_at="t0", finished_at="t1")
    scenario = Scenario("poison messages", figures={"seconds": 12.5})
    scenario.check("canaries not processed", 0)
    scenario.check("poison skipped silently", 1, evidence=["filed/tombstone: by tracker"])
    scenario.check("tokens", 1, known_gap="issue 11 §1", evidence=["CC-1: tracking_token"])
    report.scenarios.append(scenario)
    text = report.summary()
    assert "ok   canaries not processed: 0 (bar <= 0)" in text
    assert "FAIL poison skipped silently: 1" in text
    assert "filed/tombstone: by tracker" in text
    assert "[known gap: issue 11 §1]" in text
    assert "1 passed, 1 failed, 1 known gaps" in text
    as_json, as_text = report.write(tmp_path)
    assert json.loads(as_json.read_text())["ok"] is False
    assert as_text.read_text().startswith("Sotong resilience suite (short)")


def test_repeated_counts_only_what_was_seen_twice() -> None:
    assert repeated(["a", "b", "a", "c", "a"]) == {"a": 3}
    assert repeated([]) == {}


def test_resident_duplicates_are_per_complaint_step_and_channel() -> None:
    lines = [
        {"complaint_id": "c1", "state": "received", "channel": "outbox", "recipient": "resident"},
        {"complaint_id": "c1", "state": "received", "channel": "outbox", "recipient": "resident"},
        {"complaint_id": "c1", "state": "received", "channel": "sms", "recipient": "resident"},
        {"complaint_id": "c1", "state": "assigned", "channel": "outbox", "recipient": "resident"},
        {"complaint_id": "c1", "state": "assigned", "channel": "outbox", "recipient": "handler"},
        {"complaint_id": "c1", "state": "assigned", "channel": "outbox", "recipient": "handler"},
    ]
    assert resident_message_duplicates(lines) == {"c1|received|outbox": 2}


def test_a_new_message_in_the_same_state_is_not_a_duplicate() -> None:
    """A case link (중복민원) leaves the state as it was and tells the resident something new."""
    line = {"complaint_id": "c1", "state": "handler_assigned", "channel": "outbox"}
    lines = [
        line | {"template_code": "SOTONG_HANDLER_ASSIGNED"},
        line | {"template_code": "SOTONG_LINKED"},
        line | {"template_code": "SOTONG_LINKED"},
    ]
    assert resident_message_duplicates(lines) == {"c1|handler_assigned|SOTONG_LINKED|outbox": 2}


def test_outbox_lines_skip_a_line_cut_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"complaint_id": "c1"}\n{"complaint_id": "c2", "te\n{"complaint_id": "c3"}\n')
    assert [line["complaint_id"] for line in outbox_lines(path)] == ["c1", "c3"]
    assert outbox_lines(tmp_path / "missing.jsonl") == []


def test_a_number_canary_is_found_however_it_is_punctuated() -> None:
    phone = Canary("phone", "010-7123-4567")
    assert phone.count_in("to 010-7123-4567") == 1
    assert phone.count_in("to 01071234567 and 010 7123 4567") == 2
    assert phone.count_in("to 010-****-4567") == 0
    name = Canary("name", "카나리abc")
    assert name.count_in("name=카나리abc") == 1


def test_a_canary_written_in_nfd_is_still_found() -> None:
    import unicodedata

    name = Canary("name", "카나리abc")
    table = canary_table([name], {"log:x": unicodedata.normalize("NFD", "카나리abc")})
    assert table == {"name": {"log:x": 1}}


def test_the_canary_table_is_complete_and_leaks_name_the_places() -> None:
    canaries = [Canary("name", "카나리abc"), Canary("rrn_in_body", "010203-3123456")]
    places = {
        "log:intake.log": "filed 카나리abc",
        "topic:complaint.filed": "카나리abc 010203-3123456",
        "webhook:roads": "0102033123456",
    }
    table = canary_table(canaries, places)
    assert table["name"] == {"log:intake.log": 1, "topic:complaint.filed": 1, "webhook:roads": 0}
    assert leaks(table, ["name"], ["log:", "webhook:"]) == ["name in log:intake.log (1x)"]
    assert leaks(table, ["rrn_in_body"], ["webhook:"]) == ["rrn_in_body in webhook:roads (1x)"]


def test_a_generated_resident_registration_number_has_a_valid_check_digit() -> None:
    for _ in range(50):
        number = resident_registration_number()
        digits = [int(d) for d in number.replace("-", "")]
        assert len(digits) == 13
        weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
        assert (11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11) % 10 == digits[
            12
        ]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "shaped"),
    [
        (200, b"anything", "text/html", True),
        (
            422,
            b'{"error": {"code": "invalid_request", "message": "body: required"}}',
            "application/json",
            True,
        ),
        (404, b'{"detail": "Not Found"}', "application/json", False),
        (400, b"Bad Request", "text/plain", False),
        (401, b'{"error": "unauthorized"}', "application/json", False),
        (413, b"{not json", "application/json", False),
    ],
)
def test_the_error_shape(status: int, body: bytes, content_type: str, shaped: bool) -> None:
    assert is_error_shape(status, body, content_type) is shaped


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0


def test_the_full_run_has_the_issues_parameters_and_the_short_one_is_smaller() -> None:
    full = Parameters()
    assert (full.complaints, full.kill_every_s, full.poison_batch) == (5000, 10, 100)
    assert full.kills >= 20
    assert full.fuzz_requests >= 1000
    assert (full.db_pauses_s, full.broker_pause_s) == ((30, 90, 180), 30)
    assert SHORT.complaints < full.complaints
    assert SHORT.kills < full.kills


def test_the_command_line_picks_scenarios_and_refuses_unknown_ones() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["resilience", "--short", "--only", "poison,fuzz", "--kills", "7"])
    chosen = parameters_from(args)
    assert chosen.scenarios == ("poison", "fuzz")
    assert (chosen.kills, chosen.complaints) == (7, SHORT.complaints)
    with pytest.raises(SystemExit, match="unknown scenarios nope"):
        parameters_from(parser.parse_args(["resilience", "--only", "nope"]))


def test_a_webhook_is_known_by_its_cloudevent_id() -> None:
    from sotong.resilience.crashes import webhook_field

    event = b'{"specversion": "1.0", "id": "e-1", "subject": "c-1", "data": {}}'
    assert webhook_field(event, "id") == "e-1"
    assert webhook_field(event, "subject") == "c-1"
    assert webhook_field(b"not json", "id") == webhook_field(b"not json", "id")
    assert webhook_field(b"not json", "id") != webhook_field(b"other", "id")


def test_a_late_canary_is_slow_and_one_whose_topic_stopped_moving_is_stuck() -> None:
    def sent(canary: str) -> Sent:
        return Sent("deep_json", "complaint.submissions", True, (0, 5), None, canary, 100.0)

    seen = {"on-time": 130.0, "late": 300.0}
    moving = {"complaint.submissions": 395.0}

    assert canary_verdict(sent("on-time"), seen, moving, wait=120, ended=400) is None
    assert canary_verdict(sent("late"), seen, moving, wait=120, ended=400) == (
        "slow: complaint.submissions/deep_json/batch: canary processed after 200s"
    )
    still = canary_verdict(sent("missing"), seen, moving, wait=120, ended=400)
    assert still is not None
    assert still.startswith("slow: complaint.submissions/deep_json/batch: canary not within 300s")
    stopped = {"complaint.submissions": 200.0}
    stuck = canary_verdict(sent("missing"), seen, stopped, wait=120, ended=400)
    assert stuck == (
        "stuck: complaint.submissions/deep_json/batch: canary not within 300s; "
        "nothing on its topic processed for the last 200s"
    )
    never = canary_verdict(sent("missing"), seen, {}, wait=120, ended=400)
    assert never is not None
    assert never.endswith("nothing on its topic processed at all")
