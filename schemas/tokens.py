"""Tracking and resident tokens: the contract carries their hashes, never the tokens."""

import hashlib
import hmac


def hash_token(token: str) -> str:
    """What travels and is stored downstream; the token itself is given to the resident once."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, token_hash: str | None) -> bool:
    if not token or not token_hash:
        return False
    return hmac.compare_digest(hash_token(token), token_hash)
