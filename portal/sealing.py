"""Tracking tokens kept by the portal, sealed with the resident token only the resident's
cookie holds.

intake lets a resident act on a complaint (answer a 보완 요청, withdraw, reopen) with that
complaint's tracking token; tracker lets the resident token read all of them. So the
portal must keep each tracking token for the resident who returns with only the cookie,
and keeping them readable would make its collection a list of keys to residents'
complaints. Each is XORed with HMAC-SHA256 keyed with the resident token over the
complaint id: a pad unique to the (resident, complaint) pair, which nobody without the
cookie can compute. The
resident record itself is found by the resident token's SHA-256, as tracker finds it.
"""

import base64
import hashlib
import hmac

MAX_TOKEN_BYTES = 64


class CannotUnseal(ValueError):
    """The sealed value was not made for this resident and complaint."""


def _pad(resident_token: str, complaint_id: str) -> bytes:
    key = resident_token.encode()
    return b"".join(
        hmac.new(key, f"{complaint_id}/{block}".encode(), hashlib.sha256).digest()
        for block in range(MAX_TOKEN_BYTES // 32)
    )


def seal(tracking_token: str, *, resident_token: str, complaint_id: str) -> str:
    raw = tracking_token.encode()
    if len(raw) > MAX_TOKEN_BYTES - 1:
        raise ValueError("tracking token longer than the pad")
    padded = bytes([len(raw)]) + raw.ljust(MAX_TOKEN_BYTES - 1, b"\0")
    sealed = bytes(a ^ b for a, b in zip(padded, _pad(resident_token, complaint_id), strict=True))
    return base64.urlsafe_b64encode(sealed).decode()


def unseal(sealed: str, *, resident_token: str, complaint_id: str) -> str:
    data = base64.urlsafe_b64decode(sealed.encode())
    if len(data) != MAX_TOKEN_BYTES:
        raise CannotUnseal("sealed token of the wrong length")
    plain = bytes(a ^ b for a, b in zip(data, _pad(resident_token, complaint_id), strict=True))
    length = plain[0]
    if length > MAX_TOKEN_BYTES - 1 or any(plain[1 + length :]):
        raise CannotUnseal("not sealed for this resident and complaint")
    try:
        return plain[1 : 1 + length].decode()
    except UnicodeDecodeError as exc:
        raise CannotUnseal("not sealed for this resident and complaint") from exc
