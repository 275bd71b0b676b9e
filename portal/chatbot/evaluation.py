"""How well the bot answers: a held-out set of what residents type (``data/eval.ko.json``)
and a separate tuning set (``data/tuning.ko.json``) that alone chooses the thresholds.

Each case expects an entry id (a question the base answers), ``handoff`` (a complaint or
a request for a person) or ``unknown`` (a question the base does not cover). Reported:
top-1 accuracy on answerable questions, the share of "don't know", the false-answer rate
on questions the base does not cover, and how often complaints are handed off.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from portal.chatbot.bot import Chatbot, Classification, Move, Reading, Thresholds, choose

DATA = Path(__file__).parent / "data"
EVAL = DATA / "eval.ko.json"
TUNING = DATA / "tuning.ko.json"


class Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    expect: str = Field(min_length=1, description='An entry id, "handoff" or "unknown".')


class CaseSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    cases: tuple[Case, ...] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.model_validate_json(path.read_bytes())

    def check(self, bot: Chatbot) -> Self:
        known = set(bot.knowledge.by_id) | {"handoff", "unknown"}
        if stray := sorted({c.expect for c in self.cases} - known):
            raise ValueError(f"cases expect entries that do not exist: {stray}")
        return self


@dataclass(frozen=True)
class Observed:
    case: Case
    reading: Reading
    classified: Classification | None

    @property
    def group(self) -> Literal["answerable", "handoff", "unknown"]:
        if self.case.expect in ("handoff", "unknown"):
            return "handoff" if self.case.expect == "handoff" else "unknown"
        return "answerable"


async def observe(bot: Chatbot, cases: Sequence[Case]) -> list[Observed]:
    """Read every case once and classify it once, so thresholds can be tried without
    asking routing again."""
    out = []
    for case in cases:
        text = " ".join(case.text.split())
        out.append(Observed(case, bot.read(text), await bot.classified(text)))
    return out


@dataclass(frozen=True)
class Outcome:
    observed: Observed
    move: Move

    @property
    def answered(self) -> str | None:
        best = self.observed.reading.best
        return best.key if self.move == "answer" and best else None

    @property
    def correct(self) -> bool:
        expect = self.observed.case.expect
        if expect == "handoff":
            return self.move in ("person", "complaint")
        if expect == "unknown":
            return self.move == "unknown"
        return self.answered == expect


async def decide(observed: Sequence[Observed], thresholds: Thresholds) -> list[Outcome]:
    out = []
    for o in observed:

        async def classified(found: Classification | None = o.classified) -> Classification | None:
            return found

        out.append(Outcome(o, await choose(o.reading, thresholds, classified)))
    return out


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Report:
    outcomes: tuple[Outcome, ...]
    thresholds: Thresholds

    def of(self, group: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.observed.group == group]

    @property
    def top1(self) -> float:
        """Answerable questions answered with the right entry."""
        answerable = self.of("answerable")
        return share(sum(o.correct for o in answerable), len(answerable))

    @property
    def retrieval_top1(self) -> float:
        """Answerable questions whose best-ranked entry is right, whatever the threshold."""
        answerable = self.of("answerable")
        right = sum(
            1
            for o in answerable
            if o.observed.reading.best and o.observed.reading.best.key == o.observed.case.expect
        )
        return share(right, len(answerable))

    @property
    def dont_know(self) -> float:
        """Share of all cases the bot answered with "don't know"."""
        return share(sum(o.move == "unknown" for o in self.outcomes), len(self.outcomes))

    @property
    def dont_know_answerable(self) -> float:
        answerable = self.of("answerable")
        return share(sum(o.move == "unknown" for o in answerable), len(answerable))

    @property
    def wrong_answer(self) -> float:
        """Answerable questions answered with another entry."""
        answerable = self.of("answerable")
        wrong = sum(1 for o in answerable if o.answered and not o.correct)
        return share(wrong, len(answerable))

    @property
    def false_answer(self) -> float:
        """Questions the base does not cover that the bot answered anyway."""
        unknown = self.of("unknown")
        return share(sum(o.move == "answer" for o in unknown), len(unknown))

    @property
    def handed_off(self) -> float:
        handoff = self.of("handoff")
        return share(sum(o.correct for o in handoff), len(handoff))

    @property
    def utility(self) -> float:
        """What tuning maximises: right answers, minus wrong and false answers twice (a
        wrong fact costs a resident more than a "please ask the department")."""
        return (
            self.top1
            - 2 * self.wrong_answer
            - 2 * self.false_answer
            + self.handed_off
            - share(
                sum(1 for o in self.of("answerable") if o.move in ("person", "complaint")),
                len(self.of("answerable")),
            )
        )

    def lines(self, *, details: bool = False) -> list[str]:
        t = self.thresholds
        counts = {g: len(self.of(g)) for g in ("answerable", "handoff", "unknown")}
        out = [
            f"cases: {len(self.outcomes)} ({counts['answerable']} answerable, "
            f"{counts['handoff']} complaints or requests for a person, "
            f"{counts['unknown']} not covered)",
            f"thresholds: answer {t.answer:.2f}, statement {t.statement:.2f}, "
            f"morpheme weight {t.morpheme_weight:.2f}, group weight {t.group_weight:.2f}",
            f"top-1 accuracy (answerable):        {self.top1:.3f}",
            f"  retrieval alone, no threshold:    {self.retrieval_top1:.3f}",
            f"  wrong entry answered:             {self.wrong_answer:.3f}",
            f'  "don\'t know" on answerable:       {self.dont_know_answerable:.3f}',
            f'"don\'t know" share (all cases):     {self.dont_know:.3f}',
            f"false-answer rate (not covered):    {self.false_answer:.3f}",
            f"handed off (complaints, persons):   {self.handed_off:.3f}",
        ]
        if details:
            out.append("misses:")
            for o in self.outcomes:
                if not o.correct:
                    best = o.observed.reading.best
                    got = o.answered or o.move
                    top = f"{best.key} {best.score:.2f}" if best else "-"
                    out.append(
                        f"  {o.observed.case.text!r}: expected {o.observed.case.expect}, "
                        f"got {got} (best {top})"
                    )
        return out


async def evaluate(observed: Sequence[Observed], thresholds: Thresholds) -> Report:
    return Report(tuple(await decide(observed, thresholds)), thresholds)


async def tune(observed: Sequence[Observed], base: Thresholds) -> Report:
    """The thresholds with the best utility on the tuning set. Where a range of answer
    thresholds ties, its middle (not an edge fitted to one case); the highest statement
    threshold among those (the most cautious: a described problem is handed off). The
    weights are the index's and stay as built."""
    reports = []
    for a in range(20, 81, 2):
        for s in range(40, 101, 5):
            reports.append(
                await evaluate(observed, replace(base, answer=a / 100, statement=s / 100))
            )
    top = max(r.utility for r in reports)
    best = [r for r in reports if r.utility == top]
    statement = max(r.thresholds.statement for r in best)
    answers = sorted(r.thresholds.answer for r in best if r.thresholds.statement == statement)
    return await evaluate(
        observed, replace(base, answer=answers[len(answers) // 2], statement=statement)
    )
