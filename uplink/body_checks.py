"""Strict checks shared by the device's messages (:mod:`uplink.messages`) and its replies to
owner commands (:mod:`uplink.replies`): each failure is a :class:`MessageError` naming what is
wrong, and a signed token over its byte limit is a :class:`MessageTooLargeError`.

Used as::

    require(is_text(body.name), "event.name must be printable ASCII")
    body = from_json(EventBody, obj, required=frozenset({"kind"}), optional=frozenset({"clip"}))
    token = sign_limited(claims, device_key, device_id, "ring message seq 7", MAX_MESSAGE_BYTES)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.errors import MessageError, MessageTooLargeError

JTI_RE = re.compile(r"[A-Za-z0-9._~-]{8,64}")  # an owner command's jti
MAX_TEXT = 1024


def require(ok: bool, message: str) -> None:
    """MessageError(``message``) unless ``ok``."""
    if not ok:
        raise MessageError(message)


def is_text(value: object, max_chars: int = MAX_TEXT) -> bool:
    """Printable ASCII of 1..max_chars: safe to log and to use in file or object names."""
    return (isinstance(value, str) and 0 < len(value) <= max_chars and value.isascii()
            and value.isprintable())


def from_json(cls: type[Any], obj: object, required: frozenset[str],
              optional: frozenset[str] = frozenset(), lists: frozenset[str] = frozenset()) -> Any:
    """``cls(**obj)`` after checking the member names (the constructor checks the values);
    ``lists`` are JSON arrays that become tuples. ``cls.typ`` names the body in errors."""
    if not isinstance(obj, dict):
        raise MessageError(f"{cls.typ} body must be a JSON object")
    missing, extra = required - obj.keys(), obj.keys() - required - optional
    require(not missing and not extra,
            f"{cls.typ} body: missing {sorted(missing)}, unknown {sorted(extra)[:5]}")
    values = dict(obj)
    for name, value in obj.items():
        require(value is not None, f"{cls.typ}.{name} is null: omit an absent field instead")
        if name in lists:
            require(isinstance(value, list), f"{cls.typ}.{name} must be a JSON array")
            values[name] = tuple(value)
    return cls(**values)


def sign_limited(claims: Mapping[str, Any], device_key: Ed25519PrivateKey, device_id: str,
                 what: str, max_bytes: int) -> str:
    """The compact JWS of ``claims`` (``kid`` = ``device_id``); MessageTooLargeError naming
    ``what`` when it is over ``max_bytes``."""
    token = jws.sign(dict(claims), device_key, kid=device_id)
    if len(token) > max_bytes:
        raise MessageTooLargeError(f"{what} is {len(token)} bytes, over the {max_bytes}-byte "
                                   "limit: split or shorten the body")
    return token
