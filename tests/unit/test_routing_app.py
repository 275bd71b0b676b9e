"""Start-up fits the classifier only when it is not fitted yet, and then on the shipped
examples plus every transfer the store holds."""

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from routing.app import fit_unless_fitted
from routing.classifier import Classifier, Example, load_examples
from tests.fakes.routing import InMemoryRoutingStore


class FittedAlready(Classifier):
    @property
    def fitted(self) -> bool:
        return True

    def fit(self, examples: Sequence[Example]) -> Classifier:
        raise AssertionError("a fitted classifier is not fitted again")


async def test_a_fitted_classifier_is_used_as_it_is() -> None:
    await fit_unless_fitted(
        FittedAlready(threshold=0.75, general_desk="civil-passport"), InMemoryRoutingStore()
    )


async def test_an_unfitted_one_learns_the_shipped_examples_and_the_transfers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryRoutingStore()
    await store.record_transfer(
        caused_by="cmd-1",
        complaint_id="c1",
        text="악취가 나요",
        from_department="roads",
        to_department="environment",
        reason="소관 아님",
        at=datetime(2026, 11, 25, tzinfo=UTC),
    )
    classifier = Classifier(threshold=0.75, general_desk="civil-passport")
    assert not classifier.fitted
    seen: list[Example] = []

    def fit(examples: Sequence[Example]) -> Classifier:
        seen.extend(examples)
        return classifier

    monkeypatch.setattr(classifier, "fit", fit)
    await fit_unless_fitted(classifier, store)
    assert seen == [*load_examples(), Example("악취가 나요", "environment")]
