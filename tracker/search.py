"""Korean full-text search without a text index: content morphemes as an array field.

The embedded database has no text index, and a plain one would not know that 꺼졌어요 and
꺼져 are the same verb. kiwipiepy reduces title and body to their content morphemes when
the read model is built (``search_terms``); a query is reduced the same way and matched
with ``$all``, so every content word of the query must appear in the complaint.
"""

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from kiwipiepy import Kiwi

from schemas.states import ComplaintState

# Nouns, numerals, foreign words, hanja, numbers, verb and adjective stems, roots. Not
# bound nouns (것, 수), pronouns (어디) or adverbs (좀): they match almost everything.
CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "SL", "SH", "SN", "VV", "VA", "XR"})
# Light verbs in nearly every sentence (하다, 있다, 되다): as terms they only narrow a
# query by accident.
STOP_TERMS = frozenset({"하", "있", "되"})
_WORD = re.compile(r"\w+")
_LONG_NUMBER = re.compile(r"\d{6}")
"""A term with six digits in a row is not indexed: an account, card or registration number
nobody searches a complaint by (the receipt number has its own filter)."""


@functools.cache
def _kiwi() -> Kiwi:
    """One analyser per process: loading its model takes seconds, analysing a text a
    millisecond. Without the typo and multi-word dictionaries, as routing loads it: the
    process peaks near 380 MB instead of 580 MB, and the terms come out the same (checked
    on routing's 3,303 training texts: none differs)."""
    return Kiwi(load_typo_dict=False, load_multi_dict=False)


def warm_up() -> None:
    """Load the analyser's model now (in a worker thread at start-up), not in a handler:
    its first analysis alone takes seconds."""
    _kiwi().tokenize("가로등이 꺼졌어요")


@functools.lru_cache(maxsize=8192)
def search_terms(text: str) -> tuple[str, ...]:
    """The distinct content morphemes of a text, lower-cased, in order of appearance.

    Cached: a complaint's read model is rebuilt on every event, its text never changes.
    """
    if not text.strip():
        return ()
    tokens = _kiwi().tokenize(text)
    terms = (t.form.lower() for t in tokens if t.tag in CONTENT_TAGS)
    terms = (term for term in terms if term not in STOP_TERMS and not _LONG_NUMBER.search(term))
    return tuple(dict.fromkeys(terms))


def query_terms(query: str) -> list[str]:
    """What a search query must match. A query with no content word at all (only
    particles or endings) falls back to its plain words, so it still means something.
    Composed first (NFC): the stored text is, and a decomposed query would match nothing."""
    query = unicodedata.normalize("NFC", query)
    terms = list(search_terms(query))
    if terms:
        return terms
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))


@dataclass(frozen=True)
class SearchQuery:
    """What staff asked for: every term must match, and each filter given."""

    terms: tuple[str, ...] = ()
    state: ComplaintState | None = None
    department: str | None = None
    dong: str | None = None
    service_code: str | None = None
    receipt_number: str | None = None
    filed_from: datetime | None = None
    filed_to: datetime | None = None
    overdue: bool | None = None
