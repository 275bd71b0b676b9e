"""Start-up fits the classifier only when it is not fitted yet, and then on the shipped
training split plus every transfer the store holds (the held-out split judges the models
learned later, so no model in use is fitted on it)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing.app import fit_unless_fitted
from routing.classifier import Classifier, Example, load_examples, split
from routing.store import Transfer
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


async def test_an_unfitted_one_learns_the_shipped_training_split_and_the_transfers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryRoutingStore()
    await store.record_transfer(
        Transfer(
            caused_by="cmd-1",
            complaint_id="c1",
            text="악취가 나요",
            from_department="roads",
            to_department="environment",
            reason="소관 아님",
            at=datetime(2026, 11, 25, tzinfo=UTC),
        ),
    )
    classifier = Classifier(threshold=0.75, general_desk="civil-passport")
    assert not classifier.fitted
    seen: list[Example] = []

    def fit(examples: Sequence[Example]) -> Classifier:
        seen.extend(examples)
        return classifier

    monkeypatch.setattr(classifier, "fit", fit)
    built_from = await fit_unless_fitted(classifier, store)
    train, held_out = split(load_examples())
    assert seen == [*train, Example("악취가 나요", "environment")]
    assert not set(held_out) & set(seen)
    assert [label.label_id for label in built_from] == ["cmd-1"]


async def test_with_a_model_directory_the_fit_is_looked_up_there_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    classifier = Classifier(threshold=0.75, general_desk="civil-passport")
    calls: list[tuple[int, Path]] = []

    def fit_cached(examples: Sequence[Example], cache_dir: Path) -> Classifier:
        calls.append((len(examples), cache_dir))
        return classifier

    monkeypatch.setattr(classifier, "fit_cached", fit_cached)
    await fit_unless_fitted(classifier, InMemoryRoutingStore(), tmp_path)
    assert calls == [(len(split(load_examples())[0]), tmp_path)]
