"""Finding the knowledge-base entry a resident means: BM25 (Robertson–Spärck Jones, the
Okapi weighting) over two views of the text, the way routing's classifier reads text.

- content morphemes from kiwipiepy (lemma and tag), which survive inflection and spacing
  (버릴라면, 버려요 → 버리);
- character 2- and 3-grams of the text without spaces, which survive typos and words run
  together (종량제봉투파는곳).

A score is made comparable across questions by dividing it by the score the question
would get against itself as a document: 1.0 means every word of the question matched as
well as an identical phrasing would, so one confidence threshold means the same thing for
a two-word and a twenty-word question. Words the index has never seen count at the
highest weight in that bound, so a question about something the base does not cover
scores low. An entry scores as its best phrasing.
"""

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from kiwipiepy import Kiwi

CONTENT_TAGS = ("NN", "NR", "NP", "VV", "VA", "VX", "XR", "SL", "SH", "SN", "MAG")
NOT_TEXT = re.compile(r"[\W_]+", re.UNICODE)

Tokenize = Callable[[str], list[str]]


class Morphemes:
    """Content morphemes of a text (``form/TAG`` with the tag's first two letters); one
    Kiwi per instance, loaded on first use. Kiwi is used from one thread at a time."""

    @cached_property
    def kiwi(self) -> Kiwi:
        # As routing loads it: without the typo and multi-word dictionaries (~330 MB peak
        # instead of ~520 MB); typos are the character n-grams' job.
        return Kiwi(load_typo_dict=False, load_multi_dict=False)

    def __call__(self, text: str) -> list[str]:
        return [
            f"{t.form}/{t.tag[:2]}"
            for t in self.kiwi.tokenize(normalize(text))
            if t.tag.startswith(CONTENT_TAGS)
        ]


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def char_ngrams(text: str, sizes: Sequence[int] = (2, 3)) -> list[str]:
    """Character n-grams of the text with spaces and punctuation removed."""
    squeezed = NOT_TEXT.sub("", normalize(text))
    grams = [squeezed[i : i + n] for n in sizes for i in range(len(squeezed) - n + 1)]
    return grams or ([squeezed] if squeezed else [])


class BM25:
    """Okapi BM25 over tokenized documents, with the idf that stays positive
    (log(1 + (N - df + 0.5) / (df + 0.5)), as Lucene uses)."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75):
        if not documents:
            raise ValueError("BM25 needs at least one document")
        self.k1, self.b = k1, b
        self.tfs = [Counter(d) for d in documents]
        self.lengths = [len(d) for d in documents]
        self.avgdl = max(sum(self.lengths) / len(documents), 1.0)
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(documents)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.unseen_idf = math.log(1 + (n + 0.5) / 0.5)

    def _term(self, idf: float, tf: int, length: int) -> float:
        norm = self.k1 * (1 - self.b + self.b * length / self.avgdl)
        return idf * tf * (self.k1 + 1) / (tf + norm)

    def scores(self, query: Iterable[str]) -> list[float]:
        terms = set(query)
        out = []
        for tf, length in zip(self.tfs, self.lengths, strict=True):
            out.append(
                sum(self._term(self.idf[t], tf[t], length) for t in terms if tf.get(t, 0) > 0)
            )
        return out

    def self_score(self, query: Sequence[str]) -> float:
        """The score the query would get against itself as a document: the bound the
        normalised score divides by (unseen words at the highest idf)."""
        tf = Counter(query)
        return sum(
            self._term(self.idf.get(t, self.unseen_idf), count, len(query))
            for t, count in tf.items()
        )

    def normalized(self, query: Sequence[str]) -> list[float]:
        bound = self.self_score(query)
        if bound <= 0:
            return [0.0] * len(self.tfs)
        return [min(1.0, s / bound) for s in self.scores(query)]


@dataclass(frozen=True)
class Hit:
    key: str
    score: float
    morphemes: float
    characters: float


class Index:
    """Documents grouped by key (an entry's id: its question and phrasings). A key scores
    as a mix of its best single document and of all its documents read as one (so words
    spread over several phrasings still add up), each mixing the two views with
    ``morpheme_weight``."""

    def __init__(
        self,
        documents: Sequence[tuple[str, str]],
        *,
        morphemes: Tokenize,
        morpheme_weight: float = 0.5,
        group_weight: float = 0.5,
    ) -> None:
        if not 0 <= morpheme_weight <= 1 or not 0 <= group_weight <= 1:
            raise ValueError("morpheme_weight and group_weight must be within 0..1")
        self.keys = [key for key, _ in documents]
        self.tokenize = morphemes
        self.weight = morpheme_weight
        self.group_weight = group_weight
        tokens = [(key, morphemes(text), char_ngrams(text)) for key, text in documents]
        self.by_morpheme = BM25([m for _, m, _ in tokens])
        self.by_characters = BM25([c for _, _, c in tokens])
        grouped: dict[str, tuple[list[str], list[str]]] = {}
        for key, m, c in tokens:
            group = grouped.setdefault(key, ([], []))
            group[0].extend(m)
            group[1].extend(c)
        self.group_keys = list(grouped)
        self.group_morpheme = BM25([m for m, _ in grouped.values()])
        self.group_characters = BM25([c for _, c in grouped.values()])

    def _mix(self, morph: list[float], chars: list[float]) -> list[float]:
        return [self.weight * m + (1 - self.weight) * c for m, c in zip(morph, chars, strict=True)]

    def search(self, text: str, limit: int = 3) -> list[Hit]:
        morph_query, char_query = self.tokenize(text), char_ngrams(text)
        morph = self.by_morpheme.normalized(morph_query)
        chars = self.by_characters.normalized(char_query)
        best: dict[str, Hit] = {}
        for key, m, c in zip(self.keys, morph, chars, strict=True):
            score = self.weight * m + (1 - self.weight) * c
            if key not in best or score > best[key].score:
                best[key] = Hit(key, score, m, c)
        grouped = self._mix(
            self.group_morpheme.normalized(morph_query),
            self.group_characters.normalized(char_query),
        )
        g = self.group_weight
        hits = [
            Hit(
                key,
                g * whole + (1 - g) * best[key].score,
                best[key].morphemes,
                best[key].characters,
            )
            for key, whole in zip(self.group_keys, grouped, strict=True)
        ]
        return sorted(hits, key=lambda h: (-h.score, h.key))[:limit]
