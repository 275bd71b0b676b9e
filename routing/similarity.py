"""How alike two complaint texts are: TF-IDF cosine over the classifier's tokens.

A text becomes its content morphemes (the classifier's Kiwi tokenizer, so spacing and
inflection do not matter: 버릴라면 → 버리). Each feature is weighted
by sublinear term frequency times inverse document frequency, learned once from the
shipped classifier examples, and the vectors are compared by cosine. (Measured on the
labelled pairs in ``routing/data/repeats.ko.jsonl`` with ``sotong repeat-eval``: adding
the words' character bigrams, as the classifier does, separated repeats from new
complaints worse — the best threshold kept 0.86 of repeats with none caught, against
0.89 for morphemes alone.) Pure: the tokens
are computed once per complaint when it is filed and kept with it, so comparing a new
complaint with its candidates tokenizes nothing else.
"""

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Tokenize = Callable[[str], list[str]]
"""The classifier's morpheme analyzer (``routing.classifier.MorphemeAnalyzer``) or a fake."""

MAX_TERMS = 400
"""Features kept per complaint (a 4,000-character body has about that many morphemes)."""


def terms_of(text: str, tokenize: Tokenize) -> tuple[str, ...]:
    """The features of one text: its content morphemes, in order."""
    return tuple(tokenize(text)[:MAX_TERMS])


@dataclass(frozen=True)
class Similarity:
    """Inverse document frequencies, and the cosine they weigh."""

    idf: Mapping[str, float]
    unseen_idf: float
    """The weight of a feature no training text had: the rarest there is."""

    @classmethod
    def fit(cls, documents: Iterable[Sequence[str]]) -> "Similarity":
        """Smoothed idf, as scikit-learn computes it: ln((1 + n) / (1 + df)) + 1."""
        df: Counter[str] = Counter()
        n = 0
        for terms in documents:
            n += 1
            df.update(set(terms))
        idf = {t: math.log((1 + n) / (1 + k)) + 1 for t, k in df.items()}
        return cls(idf=idf, unseen_idf=math.log(1 + n) + 1)

    def vector(self, terms: Sequence[str]) -> dict[str, float]:
        counts = Counter(terms)
        weights = {
            t: (1 + math.log(k)) * self.idf.get(t, self.unseen_idf) for t, k in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {t: w / norm for t, w in weights.items()} if norm else {}

    def cosine(self, a: Sequence[str], b: Sequence[str]) -> float:
        va, vb = self.vector(a), self.vector(b)
        if len(vb) < len(va):
            va, vb = vb, va
        return min(1.0, sum(w * vb.get(t, 0.0) for t, w in va.items()))


PAIRS = Path(__file__).parent / "data" / "repeats.ko.jsonl"
DUPLICATE_PAIRS = Path(__file__).parent / "data" / "duplicates.ko.jsonl"
"""중복민원: two residents' reports from the same place, in the same department; ``repeated``
is true when they report the same problem (``sotong repeat-eval --kind duplicate``). Each
text has the service code a resident would choose for it from the catalogue
(``earlier_service_code``, ``later_service_code``; null where none fits)."""

Services = tuple[str | None, str | None]
"""The service codes of a pair's earlier and later text."""

Bar = Callable[[str | None, str | None], float | None]
"""The similarity a pair with these service codes needs to be linked, or None if it may
not be (``routing.cases.CasePolicy.duplicate_bar``)."""


@dataclass(frozen=True)
class Pair:
    """One labelled pair: did ``later`` repeat ``earlier`` (the same resident, the same
    department), or bring new facts or a new place?"""

    earlier: str
    later: str
    repeated: bool
    services: Services = (None, None)


def _code(row: dict[str, object], name: str) -> str | None:
    value = row.get(name)
    return None if value is None else str(value)


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            services = (_code(row, "earlier_service_code"), _code(row, "later_service_code"))
            pairs.append(
                Pair(str(row["earlier"]), str(row["later"]), bool(row["repeated"]), services)
            )
        except KeyError as exc:
            raise ValueError(f"{path}:{n}: missing field {exc.args[0]!r}") from None
    return pairs


@dataclass(frozen=True)
class RepeatEvaluation:
    """Scores of the labelled pairs and what a threshold makes of them."""

    repeats: tuple[float, ...]
    new: tuple[float, ...]
    repeat_services: tuple[Services, ...] = ()
    new_services: tuple[Services, ...] = ()
    """The pairs' service codes, in the order of their scores."""

    def linked(self, bar: Bar) -> tuple[int, int]:
        """How many same-problem pairs, and how many different-problem pairs, a rule that
        reads the service codes links."""

        def count(scores: Sequence[float], services: Sequence[Services]) -> int:
            bars = [bar(*s) for s in services]
            return sum(b is not None and s >= b for s, b in zip(scores, bars, strict=True))

        return count(self.repeats, self.repeat_services), count(self.new, self.new_services)

    def service_report(self, bar_at: Callable[[float], Bar], same: float, rule: str) -> str:
        """What a rule reading the service codes makes of the pairs (``rule`` says it in
        words), with the same-code bar at ``same`` and then at other values
        (``bar_at(t)``: the rule with the same-code bar at ``t``, the rest kept)."""

        def kinds(services: Sequence[Services]) -> str:
            shared = sum(a is not None and a == b for a, b in services)
            two = sum(a is not None and b is not None and a != b for a, b in services)
            return f"{shared} one code, {two} two codes, {len(services) - shared - two} without"

        dup, dif = self.linked(bar_at(same))
        lines = [
            "",
            f"with service codes ({rule}):",
            f"  duplicates: {kinds(self.repeat_services)}",
            f"  different problems: {kinds(self.new_services)}",
            f"  linked: {dup} of {len(self.repeats)} duplicates (recall "
            f"{dup / len(self.repeats):.3f}), {dif} of {len(self.new)} different problems",
            "",
            f"{'same code':>9}{'recall':>8}{'FPR':>7}",
        ]
        for t in [x / 100 for x in range(30, 61, 2)]:
            dup, dif = self.linked(bar_at(t))
            lines.append(f"{t:>9.2f}{dup / len(self.repeats):>8.3f}{dif / len(self.new):>7.3f}")
        return "\n".join(lines)

    def recall(self, threshold: float) -> float:
        return sum(s >= threshold for s in self.repeats) / len(self.repeats)

    def false_positive_rate(self, threshold: float) -> float:
        return sum(s >= threshold for s in self.new) / len(self.new)

    def report(
        self, threshold: float, *, same: str = "repeats", different: str = "new complaints"
    ) -> str:
        """``same`` and ``different`` name the two kinds of pair (duplicates: "duplicates"
        and "different problems")."""
        lines = [
            f"pairs: {len(self.repeats)} {same}, {len(self.new)} {different}",
            f"threshold {threshold:.2f}: recall {self.recall(threshold):.3f}, "
            f"false-positive rate {self.false_positive_rate(threshold):.3f} "
            f"({sum(s >= threshold for s in self.new)} of {len(self.new)} {different} caught)",
            "",
            f"{'threshold':>9}{'recall':>8}{'FPR':>7}",
        ]
        for t in [x / 20 for x in range(4, 17)]:
            lines.append(f"{t:>9.2f}{self.recall(t):>8.3f}{self.false_positive_rate(t):>7.3f}")
        return "\n".join(lines)


def evaluate_repeats(
    pairs: Sequence[Pair], similarity: Similarity, tokenize: Tokenize
) -> RepeatEvaluation:
    scores = [
        (similarity.cosine(terms_of(p.earlier, tokenize), terms_of(p.later, tokenize)), p)
        for p in pairs
    ]
    return RepeatEvaluation(
        repeats=tuple(s for s, p in scores if p.repeated),
        new=tuple(s for s, p in scores if not p.repeated),
        repeat_services=tuple(p.services for _, p in scores if p.repeated),
        new_services=tuple(p.services for _, p in scores if not p.repeated),
    )
