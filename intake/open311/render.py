"""One answer, two formats: the path's extension (``.json`` or ``.xml``) chooses.

An answer is built once as plain data (lists of mappings); JSON writes it as it is, XML
as the spec's examples do: a root element, one element per item, a child element per
field, nested lists under their own container (``attributes/attribute``), booleans as
``true``/``false``, an absent value as an empty element.
"""

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring
from zoneinfo import ZoneInfo

from fastapi import Response

KST = ZoneInfo("Asia/Seoul")


class Format(StrEnum):
    JSON = "json"
    XML = "xml"

    @property
    def media_type(self) -> str:
        return "application/json" if self is Format.JSON else "text/xml"


ITEM_OF = {
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "keywords": "keyword",
}
"""The element name of one item of a nested list, by the list's name."""


class Open311Error(Exception):
    """An error as the spec shapes it: ``[{"code": 400, "description": "..."}]``."""

    def __init__(
        self, status: int, description: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.headers = dict(headers or {})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _fill(parent: Element, name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        child = SubElement(parent, name)
        for key, item in value.items():
            _fill(child, key, item)
    elif isinstance(value, list | tuple):
        child = SubElement(parent, name)
        for item in value:
            _fill(child, ITEM_OF.get(name, "item"), item)
    else:
        SubElement(parent, name).text = _text(value)


def to_xml(data: Sequence[Mapping[str, Any]] | Mapping[str, Any], root: str, item: str) -> bytes:
    top = Element(root)
    if isinstance(data, Mapping):
        for key, value in data.items():
            _fill(top, key, value)
    else:
        for entry in data:
            _fill(top, item, entry)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(top, encoding="unicode").encode()


def answer(
    data: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fmt: Format,
    *,
    root: str,
    item: str,
    status: int = 200,
) -> Response:
    """``data`` as JSON, or as XML under ``<root>`` with one ``<item>`` per entry."""
    if fmt is Format.JSON:
        body = json.dumps(data, ensure_ascii=False).encode()
    else:
        body = to_xml(data, root, item)
    return Response(body, status_code=status, media_type=f"{fmt.media_type}; charset=utf-8")


def error_answer(error: Open311Error, fmt: Format) -> Response:
    response = answer(
        [{"code": error.status, "description": error.description}],
        fmt,
        root="errors",
        item="error",
        status=error.status,
    )
    response.headers.update(error.headers)  # a 429's Retry-After
    return response
