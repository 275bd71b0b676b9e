"""The chatbot's ranking and its data: BM25 over morphemes and character n-grams, the
knowledge base a district edits, and the evaluation sets kept apart from it."""

import json
import re

import pytest

from portal.chatbot.evaluation import EVAL, TUNING, CaseSet
from portal.chatbot.knowledge import KNOWLEDGE, KnowledgeBase
from portal.chatbot.retrieval import BM25, Index, Morphemes, char_ngrams
from schemas.catalogue import catalogue


@pytest.fixture(scope="module")
def morphemes() -> Morphemes:
    return Morphemes()


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.load()


def test_bm25_ranks_the_document_with_the_rarer_shared_word_first() -> None:
    index = BM25([["봉투", "가격"], ["봉투", "구입"], ["여권", "발급"]])

    scores = index.scores(["봉투", "구입"])

    assert scores[1] > scores[0] > scores[2] == 0
    assert index.idf["구입"] > index.idf["봉투"]


def test_a_query_identical_to_a_document_scores_one_and_unseen_words_lower_it() -> None:
    index = BM25([["대형", "폐기물", "신고"], ["음식물", "쓰레기"]])

    assert index.normalized(["대형", "폐기물", "신고"])[0] == pytest.approx(1.0)
    with_unknown = index.normalized(["대형", "폐기물", "신고", "날씨"])[0]
    assert 0 < with_unknown < 0.8
    assert index.normalized(["날씨"]) == [0.0, 0.0]
    assert index.normalized([]) == [0.0, 0.0]


def test_bm25_needs_documents() -> None:
    with pytest.raises(ValueError, match="at least one document"):
        BM25([])


def test_character_ngrams_ignore_spacing_and_punctuation() -> None:
    assert char_ngrams("종량제 봉투?") == char_ngrams("종량제봉투")
    assert "봉투" in char_ngrams("종량제 봉투")
    assert char_ngrams("봉") == ["봉"]
    assert char_ngrams("  ?! ") == []


def test_the_index_scores_a_key_by_its_best_phrasing_and_all_of_them() -> None:
    index = Index(
        [("bags", "봉투 어디서 사요"), ("bags", "봉투 파는 곳"), ("fee", "봉투 가격")],
        morphemes=str.split,
    )

    hits = index.search("봉투 파는 곳")

    assert [h.key for h in hits] == ["bags", "fee"]
    assert hits[0].score > hits[1].score
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        Index([("a", "b")], morphemes=str.split, morpheme_weight=2)


def test_morphemes_survive_inflection_and_spacing(morphemes: Morphemes) -> None:
    assert "버리/VV" in morphemes("이불 버릴라면") or "버리/VX" in morphemes("이불 버릴라면")
    assert {"종량제/NN", "봉투/NN"} <= set(morphemes("종량제봉투파는곳"))


@pytest.mark.parametrize(
    ("question", "entry"),
    [
        ("이불은 어떻게 버려요?", "bulky-how"),
        ("종량제봉투파는곳", "bags-where"),
        ("쓰래기 봉투 어디서 사요", "bags-where"),
        ("여권 만들때 머 가져가야돼", "passport-documents"),
        ("강아지 등록 어디서해", "pet-registration"),
    ],
)
def test_residents_phrasings_find_the_entry(
    knowledge: KnowledgeBase, morphemes: Morphemes, question: str, entry: str
) -> None:
    index = Index([(e.id, t) for e in knowledge.entries for t in e.texts], morphemes=morphemes)

    assert index.search(question, 1)[0].key == entry


def test_the_knowledge_base_covers_the_districts_repetitive_questions(
    knowledge: KnowledgeBase,
) -> None:
    assert len(knowledge.entries) >= 60
    ids = set(knowledge.by_id)
    for topic in (
        "bags-where", "bulky-how", "bulky-fee", "food-waste-how", "recycling-basics",
        "passport-documents", "passport-fee", "passport-period", "certificate-resident",
        "parking-enforcement", "resident-parking", "illegal-dumping-report",
        "pet-registration", "vaccination-children",
    ):  # fmt: skip
        assert topic in ids
    assert {e.department for e in knowledge.entries} <= set(catalogue().codes)


PHONE_LIKE = r"(?<![\d.])\d{2,4}(?:-\d{3,4}){0,2}(?![\d.]|cm|세|일|개)"


def test_no_answer_states_a_fee_figure_or_a_phone_number_nobody_checked(
    knowledge: KnowledgeBase,
) -> None:
    """District figures are never invented: fees are not stated at all, and the only phone
    numbers are the catalogue's and national lines everyone can check."""
    national = {"109", "1577-0199", "129", "1399", "112", "119"}
    known = national | {d.office_phone for d in catalogue().departments}
    for e in knowledge.entries:
        assert not re.search(r"\d[\d,]*\s*원", e.answer), e.id
        for number in re.findall(PHONE_LIKE, e.answer):
            assert number in known or len(number) <= 2, (e.id, number)


def test_entries_that_need_the_district_say_whom_to_ask(knowledge: KnowledgeBase) -> None:
    names = {d.name for d in catalogue().departments} | {"행정복지센터", "누리집", "정부24"}
    for e in knowledge.entries:
        if e.to_confirm:
            assert any(name in e.answer for name in names), e.id


def test_a_knowledge_base_naming_an_unknown_department_is_refused() -> None:
    raw = json.loads(KNOWLEDGE.read_text(encoding="utf-8"))
    raw["entries"][0]["department"] = "nowhere"

    with pytest.raises(ValueError, match="unknown department 'nowhere'"):
        KnowledgeBase.model_validate(raw).check_departments(catalogue())


def test_a_related_entry_that_does_not_exist_is_refused() -> None:
    raw = json.loads(KNOWLEDGE.read_text(encoding="utf-8"))
    raw["entries"][0]["related"] = ["no-such-entry"]

    with pytest.raises(ValueError, match="no-such-entry"):
        KnowledgeBase.model_validate(raw)


def test_the_held_out_set_is_large_varied_and_apart_from_what_is_fitted(
    knowledge: KnowledgeBase,
) -> None:
    held_out = CaseSet.load(EVAL).cases
    tuning = CaseSet.load(TUNING).cases

    def squeeze(text: str) -> str:
        return re.sub(r"\W", "", text)

    phrasings = {squeeze(t) for e in knowledge.entries for t in e.texts}
    assert len(held_out) >= 120
    assert not {squeeze(c.text) for c in held_out} & phrasings
    assert not {squeeze(c.text) for c in held_out} & {squeeze(c.text) for c in tuning}
    kinds = [c.expect for c in held_out]
    assert kinds.count("handoff") >= 10
    assert kinds.count("unknown") >= 10
    assert set(kinds) - {"handoff", "unknown"} <= set(knowledge.by_id)
