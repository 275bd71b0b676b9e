"""Korean search terms: what a resident wrote and what staff type meet as morphemes."""

import pytest

from tracker.search import query_terms, search_terms


def test_inflected_forms_meet_at_their_stem() -> None:
    written = set(search_terms("청라1동 주민센터 앞 가로등이 일주일째 꺼져 있습니다."))

    assert set(query_terms("가로등이 꺼졌어요")) <= written
    assert "꺼지" in written


def test_colloquial_spelling_still_finds_the_verb() -> None:
    assert "버리" in search_terms("이불 버릴라면 어케해요? 스티커는 어디서 사요")


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("가로등이 꺼졌어요", {"이", "었", "어요"}),  # particles and endings
        ("집앞에 차좀 빼주세요", {"좀", "에", "세요"}),  # adverbs, particles
        ("그것은 어디서 할 수 있나요", {"것", "어디", "수", "하", "있"}),  # and light verbs
    ],
)
def test_function_words_are_not_terms(text: str, absent: set[str]) -> None:
    assert not absent & set(search_terms(text))


def test_latin_words_are_lower_cased_and_terms_are_distinct() -> None:
    terms = search_terms("LED 가로등 고장, led 가로등 교체 CCTV")

    assert terms.count("led") == 1
    assert terms.count("가로등") == 1
    assert "cctv" in terms
    assert "LED" not in terms


def test_a_query_without_content_words_falls_back_to_its_words() -> None:
    assert query_terms("에서") == ["에서"]
    assert query_terms("   ") == []
    assert search_terms("") == ()


def test_a_decomposed_query_finds_what_a_composed_one_finds() -> None:
    import unicodedata

    from tracker.search import query_terms

    query = "가로등 꺼졌어요"
    assert query_terms(unicodedata.normalize("NFD", query)) == query_terms(query)
