"""What the suite found, as checks against bars; pure, so it is tested without processes.

A check has a measured value and a bar (a maximum). It passes, fails, or is a *known
gap*: a bar the platform does not meet yet and work is under way on (the gap names the
issue section). A known gap is still measured and reported with its evidence; only the
suite's exit status and the CI test leave it out.
"""

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    KNOWN_GAP = "known_gap"


@dataclass(frozen=True)
class Check:
    scenario: str
    name: str
    value: float
    maximum: float = 0
    known_gap: str | None = None
    """Why this bar is not asserted yet (the issue section being worked on), or None."""
    evidence: tuple[str, ...] = ()

    @property
    def met(self) -> bool:
        return self.value <= self.maximum

    @property
    def status(self) -> Status:
        if self.met:
            return Status.PASS
        return Status.KNOWN_GAP if self.known_gap else Status.FAIL

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "value": self.value,
            "bar": f"<= {self.maximum:g}",
            "status": self.status.value,
            **({"known_gap": self.known_gap} if self.known_gap else {}),
            "evidence": list(self.evidence[:EVIDENCE_LIMIT]),
            **(
                {"evidence_left_off": len(self.evidence) - EVIDENCE_LIMIT}
                if len(self.evidence) > EVIDENCE_LIMIT
                else {}
            ),
        }


EVIDENCE_LIMIT = 20


@dataclass
class Scenario:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    """The scenario could not finish: what stopped it (reported, and a failure)."""

    def check(
        self,
        name: str,
        value: float,
        *,
        maximum: float = 0,
        known_gap: str | None = None,
        evidence: Iterable[str] = (),
    ) -> Check:
        made = Check(self.name, name, value, maximum, known_gap, tuple(evidence))
        self.checks.append(made)
        return made


@dataclass
class Report:
    mode: str
    started_at: str
    scenarios: list[Scenario] = field(default_factory=list)
    finished_at: str | None = None

    def checks(self) -> list[Check]:
        return [c for s in self.scenarios for c in s.checks]

    def failures(self) -> list[Check]:
        return [c for c in self.checks() if c.status is Status.FAIL]

    def known_gaps(self) -> list[Check]:
        return [c for c in self.checks() if c.status is Status.KNOWN_GAP]

    @property
    def ok(self) -> bool:
        return not self.failures() and not any(s.error for s in self.scenarios)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "ok": self.ok,
            "counts": dict(Counter(c.status.value for c in self.checks())),
            "scenarios": [
                {
                    "name": s.name,
                    "parameters": s.parameters,
                    "figures": s.figures,
                    "error": s.error,
                    "checks": [c.as_json() for c in s.checks],
                }
                for s in self.scenarios
            ],
        }

    def summary(self) -> str:
        """The report for a person: one line per check, failures and gaps spelled out."""
        lines = [f"Sotong resilience suite ({self.mode}), {self.started_at} – {self.finished_at}"]
        marks = {Status.PASS: "ok  ", Status.FAIL: "FAIL", Status.KNOWN_GAP: "gap "}
        for scenario in self.scenarios:
            lines.append("")
            lines.append(f"== {scenario.name}")
            if scenario.error:
                lines.append(f"   could not finish: {scenario.error}")
            for name, value in scenario.figures.items():
                if isinstance(value, (int, float, str)):
                    lines.append(f"   {name}: {value}")
            for c in scenario.checks:
                gap = f"  [known gap: {c.known_gap}]" if c.status is Status.KNOWN_GAP else ""
                lines.append(
                    f" {marks[c.status]} {c.name}: {c.value:g} (bar <= {c.maximum:g}){gap}"
                )
                if c.status is not Status.PASS:
                    lines.extend(f"        {e}" for e in c.evidence[:5])
        counts = Counter(c.status for c in self.checks())
        lines.append("")
        lines.append(
            f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
            f"{counts[Status.KNOWN_GAP]} known gaps"
            + ("" if not any(s.error for s in self.scenarios) else "; a scenario did not finish")
        )
        return "\n".join(lines)

    def write(self, directory: Path) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        as_json, as_text = directory / "report.json", directory / "summary.txt"
        as_json.write_text(json.dumps(self.as_json(), indent=1, ensure_ascii=False) + "\n")
        as_text.write_text(self.summary() + "\n")
        return as_json, as_text


# ---- counting helpers ------------------------------------------------------------------


K = TypeVar("K", bound=Hashable)


def repeated(keys: Iterable[K]) -> dict[K, int]:
    """The keys seen more than once, with how often."""
    return {key: n for key, n in Counter(keys).items() if n > 1}


def resident_message_duplicates(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Messages the resident got more than once for one (complaint, step, channel), from
    the notifier's outbox lines (staff messages live in another file). A step is the state
    and the message's template: a case link (중복민원) tells the resident something new
    while the state stays, and is not the assignment's message again."""
    keys = (
        "|".join(
            str(part)
            for part in (
                line.get("complaint_id"),
                line.get("state"),
                *([line["template_code"]] if line.get("template_code") else []),
                line.get("channel"),
            )
        )
        for line in lines
        if line.get("recipient", "resident") == "resident"
    )
    return repeated(keys)


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of an outbox file (a line cut by a crash is skipped)."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


# ---- personal-data canaries ------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    """One unique value planted in one field; found where its text (or its digits, for a
    number) appears."""

    field: str
    value: str

    def patterns(self) -> list[re.Pattern[str]]:
        text = unicodedata.normalize("NFC", self.value)
        found = [re.compile(re.escape(text))]
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 8 and digits != text:
            # a number counts however it is punctuated: 01012345678, 010-1234-5678
            found.append(re.compile(r"\D?".join(re.escape(d) for d in digits)))
        return found

    def count_in(self, text: str) -> int:
        return max(len(p.findall(text)) for p in self.patterns())


def canary_table(
    canaries: Sequence[Canary], places: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """canary field → place → occurrences (0 included, so the table is complete)."""
    normalised = {place: unicodedata.normalize("NFC", text) for place, text in places.items()}
    return {
        c.field: {place: c.count_in(text) for place, text in normalised.items()} for c in canaries
    }


def leaks(
    table: Mapping[str, Mapping[str, int]],
    canary_fields: Iterable[str],
    place_prefixes: Iterable[str],
) -> list[str]:
    """``field in place`` for each of these canaries found in a place starting with one of
    these prefixes."""
    fields, prefixes = set(canary_fields), tuple(place_prefixes)
    return [
        f"{name} in {place} ({n}x)"
        for name, row in table.items()
        if name in fields
        for place, n in row.items()
        if n and place.startswith(prefixes)
    ]


# ---- HTTP answers ----------------------------------------------------------------------


def is_error_shape(status: int, body: bytes, content_type: str) -> bool:
    """The platform's error answer: JSON ``{"error": {"code": str, "message": str}}``."""
    if status < 400:
        return True
    if "json" not in content_type:
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False
    error = value.get("error") if isinstance(value, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
