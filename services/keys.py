"""Department API keys: which department a request acts as."""

import hmac
from collections.abc import Mapping

from pydantic import SecretStr


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
