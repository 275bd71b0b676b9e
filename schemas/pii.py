"""Personal data inside free text: 주민등록번호, phone numbers and e-mail addresses.

A resident may write any of them into a title, a body or a chat, and a department or
staff member into a note. What leaves the resident's own view (webhooks, the lifecycle
topic, staff messages, search excerpts and terms, Open311 answers, dead letters) passes
through :func:`mask_text` once; intake passes what it stores through :func:`mask_rrns`.
In the contract because every layer needs the same answer: the kit (dead letters) and
all four services.

**주민등록번호** ``YYMMDD-GNNNNNN``: a real calendar date and a gender digit 1–8 (1–4
citizens, 5–8 foreign residents; 9 and 0 were the 1800s). The last digit used to be a
checksum, but numbers issued since 2020-10-05 end in random digits, so a failed checksum
does not mean "not an RRN". Two nets, therefore:

- leaving the resident's view, every number of that shape is masked, checksum or not: a
  lookalike (an account number written without hyphens) costs one masked number in a copy
  a department or staff member reads, a missed RRN is a leak;
- on arrival (the stored text, which the resident and the responsible department read),
  only a *certain* one is masked: written in the 6–7 form with a separator, or with a
  valid checksum. An unseparated 13-digit run failing the checksum is as likely a bank
  account (우리은행 ``1002…``) the department needs for a refund; it stays in the stored
  text and is masked at every exit.

**Phone numbers**: mobile (010, 011, 016–019), Seoul 02, the area codes 031–064, 070,
with hyphens, dots, spaces, parentheses or nothing, and ``+82`` forms. 15xx/16xx
business numbers and 4-digit–4-digit local numbers are not personal and stay.

**E-mail addresses**: ASCII local part and domain.

Numbers inside a URL are left alone (a link with ``?id=01012345678`` keeps working), as
is everything that merely has digits: receipt numbers (``YYMMDD-NNNNNN``, twelve digits),
dates, amounts, 행정동 codes (ten digits, never a leading 0), complaint ids (UUIDs).
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, overload

Kind = Literal["rrn", "phone", "email"]

_DASH = "-‐‑‒–—－"
_SEP = rf"(?:[ ]?[{_DASH}.][ ]?|[ ])"
"""Between the groups of a number: one dash or dot (with a space either side), or a space."""
_NOT_BEFORE = r"(?<![0-9A-Za-z_+@\-])"
_NOT_AFTER = r"(?![0-9A-Za-z_@])"
"""Digits and Latin letters may not touch a match; Hangul may (연락처010-1234-5678로)."""

_RRN = re.compile(
    _NOT_BEFORE
    + r"(?P<yy>\d\d)(?P<mm>\d\d)(?P<dd>\d\d)"
    + rf"(?P<sep>[ ]?[{_DASH}][ ]?|[ ])?"
    + r"(?P<g>\d)(?P<rest>\d{6})"
    + r"(?!\d)(?![A-Za-z_@])"
)
_AREA = r"01[016-9]|02|0(?:3[1-3]|4[1-4]|5[1-5]|6[1-4])|070"
_PHONE = re.compile(
    r"(?:"
    + rf"(?P<intl>\+82{_SEP}?(?:\(0\){_SEP}?)?)(?P<iarea>1[016-9]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)"
    + rf"|\((?P<parea>{_AREA})\)[ ]?"
    + rf"|{_NOT_BEFORE}(?P<area>{_AREA})"
    + r")"
    + rf"(?(parea)|{_SEP}?)"
    + r"(?P<mid>\d{3,4})"
    + rf"{_SEP}?"
    + r"(?P<last>\d{4})"
    + _NOT_AFTER
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9_%+\-])(?P<local>[A-Za-z0-9](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9_%+\-])?)"
    r"@(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,})"
    r"(?![A-Za-z0-9\-@])"
)
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)

_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}

RRN_MASK = "******-*******"


@dataclass(frozen=True)
class Found:
    """One piece of personal data in a text: ``text[start:end]``."""

    kind: Kind
    start: int
    end: int
    masked: str
    certain: bool = True
    """For an RRN: written with a separator or with a valid checksum (see the module)."""


def rrn_birth_date(digits: str) -> date | None:
    """The birth date a 13-digit RRN states, or None if its date or gender digit is
    impossible."""
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        return None
    century = _CENTURY.get(digits[6])
    if century is None:
        return None
    try:
        return date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return None


def rrn_checksum_valid(digits: str) -> bool:
    """The pre-2020 check digit: ``(11 - Σ wᵢdᵢ mod 11) mod 10``. Numbers issued since
    2020-10-05 have random last digits and pass only by chance (one in ten)."""
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(w * int(d) for w, d in zip(_RRN_WEIGHTS, digits, strict=False))
    return (11 - total % 11) % 10 == int(digits[12])


def _mask_phone(m: re.Match[str]) -> str:
    head = f"+82-{m.group('iarea')}" if m.group("intl") else m.group("parea") or m.group("area")
    return f"{head}-****-{m.group('last')}"


def _mask_email(m: re.Match[str]) -> str:
    return f"{m.group('local')[0]}***@{m.group('domain')}"


def _spans(text: str) -> Iterator[Found]:
    lowered = text.lower()
    urls = [u.span() for u in _URL.finditer(text)] if "://" in text or "www." in lowered else []

    def in_url(start: int, end: int) -> bool:
        return any(a <= start and end <= b for a, b in urls)

    for m in _RRN.finditer(text):
        digits = m.group("yy") + m.group("mm") + m.group("dd") + m.group("g") + m.group("rest")
        if rrn_birth_date(digits) is None or in_url(*m.span()):
            continue
        certain = bool(m.group("sep")) or rrn_checksum_valid(digits)
        yield Found("rrn", m.start(), m.end(), RRN_MASK, certain)
    for m in _PHONE.finditer(text):
        if not in_url(*m.span()):
            yield Found("phone", m.start(), m.end(), _mask_phone(m))
    for m in _EMAIL.finditer(text) if "@" in text else ():
        if not in_url(*m.span()):
            yield Found("email", m.start(), m.end(), _mask_email(m))


def find(text: str) -> list[Found]:
    """Every piece of personal data in ``text``, in order, none overlapping (an RRN wins
    over a phone number inside it, the earlier over the later)."""
    found: list[Found] = []
    order = {"rrn": 0, "email": 1, "phone": 2}
    for item in sorted(_spans(text), key=lambda f: (f.start, order[f.kind])):
        if found and item.start < found[-1].end:
            continue
        found.append(item)
    return found


def _replace(text: str, found: list[Found]) -> str:
    out, at = [], 0
    for item in found:
        out.append(text[at : item.start])
        out.append(item.masked)
        at = item.end
    out.append(text[at:])
    return "".join(out)


@overload
def mask_text(text: str) -> str: ...
@overload
def mask_text(text: None) -> None: ...
def mask_text(text: str | None) -> str | None:
    """``text`` as it may leave the resident's own view: every RRN-shaped number, phone
    number and e-mail address masked (``******-*******``, ``010-****-5678``,
    ``h***@example.kr``), everything else unchanged. Idempotent."""
    if not text:
        return text
    for _ in range(3):
        found = find(text)
        again = any(_touches(text, f) for f in found)
        text = _replace(text, found)
        if not again:
            break
    return text


def _touches(text: str, item: Found) -> bool:
    """A match next to a digit, letter or sign: its mask may give a neighbour a new edge
    (``0…(010) 1234-5678`` once the run before it is masked), so look again."""
    edges = text[item.start - 1 : item.start] + text[item.end : item.end + 1]
    return any(c.isascii() and (c.isalnum() or c in "@.+-_%()") for c in edges)


@overload
def mask_rrns(text: str) -> str: ...
@overload
def mask_rrns(text: None) -> None: ...
def mask_rrns(text: str | None) -> str | None:
    """``text`` as intake stores it: certain 주민등록번호 masked, nothing else touched."""
    if not text:
        return text
    return _replace(text, [f for f in find(text) if f.kind == "rrn" and f.certain])


def mask_fields(values: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """A copy of ``values`` with the named text fields masked (absent or None ones stay)."""
    return {
        name: mask_text(value) if name in names and isinstance(value, str) else value
        for name, value in values.items()
    }


def _mask_json(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _mask_json(v) for k, v in value.items()}
    return value


_ESCAPE = re.compile(r'\\u(?![dD][89a-fA-F])([0-9a-fA-F]{4})|\\([nrtbf"\\/])')
_ESCAPED = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _unescape(m: re.Match[str]) -> str:
    if m.group(1):
        return chr(int(m.group(1), 16))
    return _ESCAPED.get(m.group(2), m.group(2))


def mask_bytes(value: bytes) -> bytes:
    """A message value as a dead letter may carry it, unchanged if it holds no personal
    data. JSON has every string masked and is written back compactly; anything else (broken
    JSON, invalid UTF-8, a cut excerpt) is masked as text with its JSON escapes decoded
    first (``\\n010-…`` or ``\\ucc98010-…`` would hide a number's edge), undecodable
    bytes kept as they were."""
    text = value.decode("utf-8", "surrogateescape")
    try:
        parsed = json.loads(text)
        masked = _mask_json(parsed)
    except (ValueError, RecursionError):  # not JSON, or nested past what Python parses
        readable = _ESCAPE.sub(_unescape, text)
        found = find(readable)
        if not found:
            return value
        return _replace(readable, found).encode("utf-8", "surrogateescape")
    if masked == parsed:
        return value
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogateescape"
    )
