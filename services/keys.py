"""Department API keys: which department a request acts as."""

import hmac
from collections.abc import Mapping

from fastapi.security import APIKeyHeader
from pydantic import SecretStr

API_KEY = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="ApiKey",
    description="A department's key (its commands, its queue) or a staff key.",
    auto_error=False,
)
"""The ``X-Api-Key`` header as a security scheme: a route that takes ``Security(API_KEY)``
is documented as needing it, and the docs page offers "Authorize". ``auto_error=False``:
the route answers the 401 itself, in the kit's error shape."""


class ApiKeys:
    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._keys = {dept: key.get_secret_value().encode() for dept, key in keys.items()}

    def department(self, presented: str | None) -> str | None:
        """The department whose key this is, or None. Compares every key in constant time."""
        if not presented:
            return None
        found = None
        for dept, key in self._keys.items():
            if hmac.compare_digest(key, presented.encode()):
                found = dept
        return found
