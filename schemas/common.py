"""Value objects shared by several messages."""

import re
import unicodedata
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff"))
"""Zero-width space, word joiner and BOM: invisible, so removed; a body of only these is
empty. (Zero-width joiners stay: emoji sequences need them.)"""

BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
"""Characters that draw nothing though they are not formatting: the combining grapheme
joiner, the Hangul fillers (a favourite "invisible name"), two Khmer inherent vowels and
the blank Braille pattern."""


def _blank(char: str) -> bool:
    """Draws nothing on its own: whitespace, a format character (the joiners U+200C/U+200D,
    marks, tags, soft hyphen), a variation selector or a blank letter."""
    code = ord(char)
    return (
        char.isspace()
        or unicodedata.category(char) == "Cf"
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x180B <= code <= 0x180F
        or char in BLANK_LETTERS
    )


BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embedding, override and isolate controls: they make text read differently from how it
is stored (a reversed phone number, a disguised link), so text holding them is refused."""


def normalise_text(value: object) -> object:
    """NFC (a phone that sends decomposed Hangul files the same words as one that does not),
    invisible characters removed, control characters refused, and a text of nothing but
    invisible characters refused: each refusal names the character so the caller knows
    what to remove. (A text that is empty or only spaces is left to the field's length.)"""
    if not isinstance(value, str):
        return value
    text = unicodedata.normalize("NFC", value).translate(INVISIBLE)
    for char in text:
        if char in BIDI_CONTROLS:
            raise ValueError(f"must not contain the text direction control U+{ord(char):04X}")
        if unicodedata.category(char) == "Cc" and char not in "\t\n\r":
            raise ValueError(f"must not contain the control character U+{ord(char):04X}")
    if text.strip() and all(_blank(char) for char in text):
        # Joiners stay in text (an emoji family is three emoji joined by U+200D), so a
        # text of nothing else survives the removal above and is refused here instead.
        shown = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(text) if not c.isspace())
        raise ValueError(f"must contain visible text, not only invisible characters ({shown})")
    return text


Text = Annotated[str, BeforeValidator(normalise_text), StringConstraints(strip_whitespace=True)]
"""Free text from outside: NFC, no invisible or control characters, something visible in
it, trimmed."""


class WireModel(BaseModel):
    """Base of every wire model: frozen, and tolerant of fields added by newer writers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Channel(StrEnum):
    WEB = "web"
    KAKAO = "kakao"
    CHATBOT = "chatbot"
    CALL_CENTER = "call_center"
    OPEN311 = "open311"


class ChatTurn(WireModel):
    """One message of the chat that led to a complaint (the chatbot or KakaoTalk)."""

    role: Literal["resident", "bot"] = Field(description="Who wrote it.")
    text: Annotated[Text, Field(min_length=1, max_length=1000)]


MAX_TRANSCRIPT_TURNS = 40

Transcript = Annotated[
    list[ChatTurn],
    Field(
        max_length=MAX_TRANSCRIPT_TURNS,
        description="The chat that led to the complaint, oldest first, for the handler "
        "(at most 40 turns of 1,000 characters). Personal data like the body.",
    ),
]


class Coordinates(WireModel):
    lat: float = Field(ge=33.0, le=39.0, description="WGS84 latitude (Korea)")
    lon: float = Field(ge=124.0, le=132.0, description="WGS84 longitude (Korea)")


class Location(WireModel):
    address: Annotated[Text, Field(max_length=200)] | None = None
    dong: Annotated[Text, Field(max_length=40, description="행정동, e.g. 청라1동")] | None = None
    coordinates: Coordinates | None = None


PHONE_PATTERN = re.compile(r"^0\d{1,2}-?\d{3,4}-?\d{4}$")


def _korean_phone(value: str) -> str:
    if not PHONE_PATTERN.match(value):
        raise ValueError("must be a Korean phone number such as 010-1234-5678")
    return value


KoreanPhone = Annotated[Text, AfterValidator(_korean_phone)]


class Resident(WireModel):
    """Who filed. Personal data: never logged, never a metric label, masked in public views."""

    name: Annotated[Text, Field(min_length=1, max_length=50)] | None = None
    phone: KoreanPhone | None = Field(
        default=None, description="Korean phone number, e.g. 010-1234-5678"
    )
    email: Annotated[Text, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = (
        None
    )
    notification_consent: bool = Field(
        default=True, description="The resident agreed to receive progress notifications."
    )


def mask_name(name: str | None) -> str | None:
    """홍길동 → 홍*동; 김철 → 김*. What a public view may show of a resident's name."""
    if not name:
        return name
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str | None) -> str | None:
    """010-1234-5678 → 010-****-5678."""
    if not phone:
        return phone
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}-****-{digits[-4:]}"
