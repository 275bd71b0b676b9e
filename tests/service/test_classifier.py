"""The classifier on text written the way residents write, and its evaluation."""

from pathlib import Path

import pytest

from routing.classifier import (
    Classifier,
    Example,
    evaluate,
    fingerprint,
    load_examples,
    split,
)


@pytest.mark.parametrize(
    ("text", "department"),
    [
        ("이불 버릴라면 어케해요", "resource-circulation"),
        ("집앞에 차좀 빼주세요", "parking"),
        ("윗집 공사 소리땜에 미치겠어요 주말에도 드릴 소리가", "environment"),
        ("횡단보도 신호가 너무 짧아서 할머니들이 못 건너요", "transport"),
        ("가로등이 며칠째 꺼져있어서 밤에 무서워요", "roads"),
        ("놀이터 그네 줄이 끊어질 것 같아요", "parks"),
        ("비만 오면 골목에 물이 안빠져요", "sewer"),
        ("길고양이가 새끼를 낳았는데 어디 연락해요", "animal"),
        ("자동차세 고지서가 두번 나왔어요", "tax"),
        ("여권 재발급 받으려면 뭐 필요해요", "civil-passport"),
    ],
)
def test_resident_style_sentences_it_never_saw(
    trained_classifier: Classifier, text: str, department: str
) -> None:
    prediction = trained_classifier.predict(text)
    assert prediction.department == department
    assert prediction.auto


def test_text_with_nothing_to_go_on_goes_to_the_general_desk(
    trained_classifier: Classifier,
) -> None:
    prediction = trained_classifier.predict("안녕하세요")
    assert (prediction.department, prediction.auto) == ("civil-passport", False)


def test_held_out_accuracy_and_auto_precision() -> None:
    """The bar of the routing issue, on the project's own held-out split."""
    train, test = split(load_examples())
    assert not {e.text for e in train} & {e.text for e in test}
    result = evaluate(Classifier(threshold=0.75, general_desk="civil-passport").fit(train), test)
    assert result.accuracy >= 0.90
    assert result.auto_precision >= 0.97
    assert result.auto_share >= 0.6
    assert set(result.per_department) == {e.department for e in test}


def test_the_dataset_covers_every_department_richly() -> None:
    from collections import Counter

    from routing.catalogue import Catalogue

    counts = Counter(e.department for e in load_examples())
    assert set(counts) == set(Catalogue.load().departments)
    assert min(counts.values()) >= 150


def small_dataset() -> list[Example]:
    wanted = {"parking", "roads", "animal"}
    examples = load_examples()
    return [e for d in sorted(wanted) for e in [x for x in examples if x.department == d][:30]]


def test_a_fitted_model_is_kept_and_reloaded_until_its_data_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = small_dataset()
    first = Classifier(threshold=0.5, general_desk="civil-passport").fit_cached(data, tmp_path)
    (artifact,) = tmp_path.glob("classifier-*.pkl")
    assert artifact.name == f"classifier-{fingerprint(data)}.pkl"

    def no_training(*_: object) -> Classifier:
        raise AssertionError("trained again although nothing changed")

    monkeypatch.setattr(Classifier, "fit", no_training)
    again = Classifier(threshold=0.9, general_desk="general").fit_cached(data, tmp_path)
    text = "집앞에 차좀 빼주세요"
    assert again.probabilities([text]).tolist() == first.probabilities([text]).tolist()
    assert (again.threshold, again.general_desk) == (0.9, "general")  # settings, not artifact

    monkeypatch.undo()
    changed = [*data, Example("주차장 입구를 막은 차", "parking")]
    assert fingerprint(changed) != fingerprint(data)
    Classifier(threshold=0.5, general_desk="civil-passport").fit_cached(changed, tmp_path)
    assert {p.name for p in tmp_path.glob("classifier-*.pkl")} == {
        f"classifier-{fingerprint(data)}.pkl",
        f"classifier-{fingerprint(changed)}.pkl",
    }


def test_a_torn_artifact_is_retrained_not_trusted(tmp_path: Path) -> None:
    data = small_dataset()
    (tmp_path / f"classifier-{fingerprint(data)}.pkl").write_bytes(b"\x80\x05torn")
    model = Classifier(threshold=0.5, general_desk="civil-passport").fit_cached(data, tmp_path)
    assert model.predict("집앞에 차좀 빼주세요").department == "parking"
