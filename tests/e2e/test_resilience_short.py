"""The resilience suite, short (``sotong resilience --short``), so a regression fails CI.

The whole suite runs once for the module, on its own embedded broker and database (it
kills and stops them), with production retry settings; each test then holds one
scenario's report to its bars. A bar listed as a known gap (work under way on issue 11)
is reported in the JSON but not asserted here; every other bar is.
"""

import asyncio
from datetime import UTC, datetime

import pytest

from routing.classifier import Classifier
from services.settings import PROJECT_ROOT
from sotong.resilience.report import Report, Scenario, Status
from sotong.resilience.run import SHORT, run_all
from tests.conftest import MODEL_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def report(trained_classifier: Classifier, tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("resilience")
    result = Report(mode="short", started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    asyncio.run(run_all(root, MODEL_DIR, SHORT, result))
    # kept after the temporary directory is gone, for whoever reads a red CI run
    as_json, _ = result.write(PROJECT_ROOT / "var" / "resilience" / "short")
    print(result.summary())
    print(f"report: {as_json}")
    return result


def scenario(report: Report, title: str) -> Scenario:
    found = [s for s in report.scenarios if s.name == title]
    assert found, f"scenario {title!r} did not run"
    return found[0]


def assert_bars(found: Scenario) -> None:
    assert found.error is None, f"{found.name} could not finish: {found.error}"
    failed = [c for c in found.checks if c.status is Status.FAIL]
    assert not failed, "\n".join(
        f"{c.name}: {c.value:g} (bar <= {c.maximum:g}); " + "; ".join(c.evidence[:5])
        for c in failed
    )
    assert found.checks, "a scenario that checks nothing proves nothing"


def test_poison_messages_are_dead_lettered_and_the_canary_after_each_is_processed(
    report: Report,
) -> None:
    assert_bars(scenario(report, "poison messages"))


def test_no_key_reaches_what_it_should_not(report: Report) -> None:
    found = scenario(report, "isolation matrix")
    assert_bars(found)
    assert found.figures["requests"] > 16 * 16, "every department key against every endpoint"


def test_no_personal_data_in_logs_metrics_webhooks_search_or_stats(report: Report) -> None:
    found = scenario(report, "personal-data scan")
    assert_bars(found)
    places = next(iter(found.figures["table"].values()))
    assert any(p.startswith("log:") for p in places), "the scan covered the logs"
    assert any(p.startswith("webhook:") for p in places), "and the webhooks"
    assert any(n for row in found.figures["table"].values() for n in row.values()), (
        "the canaries are found where they belong (the resident's own complaint), "
        "so the scan can see them"
    )


def test_fuzzing_finds_no_5xx_and_no_error_outside_the_shape(report: Report) -> None:
    found = scenario(report, "fuzzing")
    assert_bars(found)
    assert found.figures["requests"] >= SHORT.fuzz_requests


def test_nothing_is_lost_or_doubled_under_kill_9(report: Report) -> None:
    found = scenario(report, "kill -9 under load")
    assert_bars(found)
    assert found.figures["accepted"] > 0
    assert found.figures["kills_done"] == SHORT.kills


def test_nothing_retryable_is_dead_lettered_through_outages(report: Report) -> None:
    found = scenario(report, "outages under load")
    assert_bars(found)
    assert found.figures["accepted"] > 0
