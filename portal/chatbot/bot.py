"""The chatbot: answer from the knowledge base when retrieval is confident, hand off to a
complaint when the resident wants a person or describes a problem, and say plainly that it
does not know otherwise.

Which department a complaint belongs to is routing's to say (``POST /v1/classify``, passed
in as ``classify``); this module never imports routing. It is stateless per message: the
front ends (the portal's chat page, the Kakao skill) keep the conversation.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Self

from kiwipiepy import Kiwi

from portal.chatbot.knowledge import Entry, KnowledgeBase
from portal.chatbot.retrieval import Hit, Index, Morphemes, normalize
from portal.chatbot.texts import Texts
from schemas.catalogue import DepartmentCatalogue, catalogue

MAX_INPUT = 1000
"""Characters of a message the bot reads (routing classifies up to 4,000)."""

Kind = Literal["answer", "unknown", "handoff"]


@dataclass(frozen=True)
class Reply:
    kind: Kind
    text: str
    links: tuple[tuple[str, str], ...] = ()
    department: str | None = None
    department_name: str | None = None
    suggestions: tuple[str, ...] = ()
    entry_id: str | None = None
    """The knowledge-base entry answered (kind "answer")."""
    confidence: float = 0.0
    """Retrieval's normalised score of the best entry (0..1)."""
    complaint_text: str | None = None
    """On handoff, what to file: the resident's words, or None when the message only asked
    for a person (the front end files the conversation's earlier words instead)."""
    service_code: str | None = None
    """On handoff after an answer's topic, the catalogue service code to file under."""


@dataclass(frozen=True)
class Classification:
    department: str
    confidence: float
    auto: bool


class ClassifierUnavailable(Exception):
    """Routing did not answer in time or at all: the bot answers without it."""


Classify = Callable[[str], Awaitable[Classification]]


@dataclass(frozen=True)
class Thresholds:
    """Measured with ``sotong chatbot-eval --tune`` on the tuning set (never the held-out
    one): below ``answer`` the bot does not answer; a message written as a statement
    (a problem described, not a question asked) is answered only from ``statement``."""

    answer: float = 0.28
    statement: float = 0.65
    morpheme_weight: float = 0.5
    group_weight: float = 0.5


@dataclass(frozen=True)
class Reading:
    person: bool
    """The resident asks for a person (or to file)."""
    statement: bool
    """Written as a report or request, not a question."""
    best: Hit | None

    @property
    def score(self) -> float:
        return self.best.score if self.best else 0.0


Move = Literal["person", "complaint", "answer", "unknown"]


async def choose(
    reading: Reading,
    thresholds: Thresholds,
    classified: Callable[[], Awaitable[Classification | None]],
) -> Move:
    """The bot's decision, given what it read and (asked only when needed) routing's
    classification: a person when asked for; a complaint when the message is written as
    one and routing is confident where it belongs, unless retrieval is very sure it is a
    question the base answers; an answer above the threshold; otherwise "don't know"."""
    if reading.person:
        return "person"
    if reading.statement and reading.score < thresholds.statement:
        found = await classified()
        if found is not None and found.auto:
            return "complaint"
    if reading.best is not None and reading.score >= thresholds.answer:
        return "answer"
    return "unknown"


class Chatbot:
    def __init__(
        self,
        knowledge: KnowledgeBase,
        texts: Texts,
        departments: DepartmentCatalogue,
        *,
        classify: Classify,
        morphemes: Morphemes,
        thresholds: Thresholds = Thresholds(),
    ) -> None:
        self.knowledge = knowledge
        self.texts = texts
        self.departments = departments
        self.classify = classify
        self.morphemes = morphemes
        self.thresholds = thresholds
        self.index = Index(
            [(e.id, text) for e in knowledge.entries for text in e.texts],
            morphemes=morphemes,
            morpheme_weight=thresholds.morpheme_weight,
            group_weight=thresholds.group_weight,
        )

    @classmethod
    def load(
        cls,
        *,
        classify: Classify,
        thresholds: Thresholds = Thresholds(),
        knowledge: KnowledgeBase | None = None,
        morphemes: Morphemes | None = None,
    ) -> Self:
        """The bot over the shipped knowledge base and texts; loads Kiwi (seconds, ~330 MB)."""
        departments = catalogue()
        return cls(
            knowledge or KnowledgeBase.load(departments=departments),
            Texts.load(),
            departments,
            classify=classify,
            morphemes=morphemes or Morphemes(),
            thresholds=thresholds,
        )

    @property
    def kiwi(self) -> Kiwi:
        return self.morphemes.kiwi

    def search(self, text: str, limit: int = 3) -> list[Hit]:
        return self.index.search(text[:MAX_INPUT], limit)

    def wants_person(self, text: str) -> bool:
        squeezed = normalize(text).replace(" ", "")
        return any(m in squeezed for m in self.texts.person_markers)

    def is_statement(self, text: str) -> bool:
        """Written as a report or a request (a finished sentence or 해 주세요), with no
        sign of a question: the shape of a complaint, not of an inquiry."""
        squeezed = normalize(text).replace(" ", "")
        if any(m in squeezed for m in self.texts.question_markers):
            return False
        if any(m in squeezed for m in self.texts.request_markers):
            return True
        return any(t.tag == "EF" for t in self.kiwi.tokenize(text))

    def read(self, text: str) -> "Reading":
        """What the bot reads in a message before deciding (no I/O)."""
        hits = self.search(text, limit=1)
        return Reading(
            person=self.wants_person(text),
            statement=self.is_statement(text),
            best=hits[0] if hits else None,
        )

    async def reply(self, text: str) -> Reply:
        text = " ".join(text.split())[:MAX_INPUT]
        if not text:
            return Reply(kind="unknown", text=self.texts.empty)
        reading = self.read(text)
        memo: list[Classification | None] = []

        async def lazily() -> Classification | None:
            if not memo:
                memo.append(await self.classified(text))
            return memo[0]

        move = await choose(reading, self.thresholds, lazily)
        score = reading.score
        if move == "person":
            return self._person(text, await lazily())
        if move == "complaint":
            found = await lazily()
            assert found is not None  # choose() hands off a complaint only when classified
            return self._complaint(text, found, score)
        if move == "answer":
            assert reading.best is not None
            return self._answer(self.knowledge.by_id[reading.best.key], score)
        return self._unknown(await lazily(), score)

    async def classified(self, text: str) -> Classification | None:
        """Routing's department for the text, or None when routing does not answer."""
        try:
            return await self.classify(text)
        except ClassifierUnavailable:
            return None

    def _names(self, code: str | None) -> tuple[str | None, str | None]:
        dept = self.departments.by_code.get(code or "")
        return (dept.name, dept.office_phone) if dept else (None, None)

    def _answer(self, entry: Entry, score: float) -> Reply:
        name, phone = self._names(entry.department)
        owner = self.texts.answer_owner.format(department_name=name, office_phone=phone)
        related = (self.knowledge.by_id[r].question for r in entry.related)
        return Reply(
            kind="answer",
            text=f"{entry.answer}\n\n{owner}",
            links=tuple((link.label, str(link.url)) for link in entry.links),
            department=entry.department,
            department_name=name,
            suggestions=tuple(related)[:3],
            entry_id=entry.id,
            confidence=score,
            service_code=entry.service_code,
        )

    def _unknown(self, classified: Classification | None, score: float) -> Reply:
        if classified is not None and classified.auto:
            name, phone = self._names(classified.department)
            if name and phone:
                return Reply(
                    kind="unknown",
                    text=self.texts.unknown_with_phone.format(
                        department_name=name, office_phone=phone
                    ),
                    department=classified.department,
                    department_name=name,
                    confidence=score,
                )
        return Reply(kind="unknown", text=self.texts.unknown, confidence=score)

    def _complaint(self, text: str, classified: Classification, score: float) -> Reply:
        name, _ = self._names(classified.department)
        return Reply(
            kind="handoff",
            text=self.texts.handoff_complaint.format(department_name=name),
            department=classified.department,
            department_name=name,
            confidence=score,
            complaint_text=text,
        )

    def _person(self, text: str, classified: Classification | None) -> Reply:
        if classified is not None and classified.auto:
            name, _ = self._names(classified.department)
            return Reply(
                kind="handoff",
                text=self.texts.handoff_person.format(department_name=name),
                department=classified.department,
                department_name=name,
                complaint_text=text,
            )
        department = classified.department if classified else None
        return Reply(
            kind="handoff",
            text=self.texts.handoff_person_general,
            department=department,
            department_name=self._names(department)[0],
        )
