"""The small rules every doorward wire format shares: JSON, ids, hashes, timestamps, topics.

Pure and stdlib-only, so any uplink module (and the agent, through ``uplink``) can use them
without pulling in cryptography, paho or boto3. Each rule lives here once::

    canonical_json({"b": 1, "a": 2})            # b'{"a":2,"b":1}': the bytes that get signed
    claims = strict_json_object(raw, "manifest claims", ManifestError)   # dup keys/NaN refused
    is_int(v), is_hex64(h), is_id(clip_id), is_device_id(iss)            # id and hash checks
    iso_utc(now) / iso_utc_seconds(now) / iso_utc_z(now) / compact_utc(now), is_iso_utc(text)
    device_topic(device_id, "resp")             # "doorward/<device_id>/resp"

Device-signed tokens (manifests, messages, replies, progress records) are verified by
:func:`uplink.jws.verify_device_token`, which builds on these.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, TypeGuard

__all__ = [
    "DEVICE_ID_RE",
    "ID_RE",
    "KEY_ID_RE",
    "MAX_INT",
    "TOPIC_ROOT",
    "JsonRefused",
    "canonical_json",
    "compact_utc",
    "device_topic",
    "is_device_id",
    "is_hex64",
    "is_id",
    "is_int",
    "is_iso_utc",
    "iso_utc",
    "iso_utc_seconds",
    "iso_utc_z",
    "loads_strict",
    "std_b64",
    "std_b64_decode",
    "strict_json_object",
]

MAX_INT = 2**53 - 1  # exact in every JSON implementation
DEVICE_ID_RE = re.compile(r"dw-[a-z2-7]{16}")
KEY_ID_RE = re.compile(r"k-[a-z2-7]{16}")  # an owner key id
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # safe as one object-name component
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")
TOPIC_ROOT = "doorward"


# --- JSON ------------------------------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, ASCII only, no NaN: one byte string per JSON value.

    What gets signed and hashed (JWS signing input, ledger entry hashes). Raises ValueError (NaN,
    Infinity) or TypeError (not JSON-serialisable); callers translate to their error.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


class JsonRefused(ValueError):
    """Well-formed JSON that doorward refuses: a duplicate member or NaN/Infinity.

    ``member`` is the duplicated name (None for a constant), so a caller can word its own error.
    """

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise JsonRefused(f"duplicate JSON member {name[:40]!r}", member=name)
        obj[name] = value
    return obj


def _no_constants(name: str) -> Any:
    raise JsonRefused(f"JSON constant {name} is not allowed")


def loads_strict(data: bytes | str) -> Any:
    """Parse UTF-8 JSON with no duplicate members and no NaN/Infinity.

    Raises JsonRefused for the refused constructs, another ValueError (UnicodeError,
    JSONDecodeError) for bytes that are not UTF-8 JSON, RecursionError for absurd nesting. Lone
    surrogates pass (a caller that checks its fields as printable text refuses them there);
    :func:`strict_json_object` refuses them.
    """
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def strict_json_object(
    raw: bytes | str, what: str, error: type[Exception] = ValueError
) -> dict[str, Any]:
    """:func:`loads_strict` for input that must be a JSON object without lone surrogates.

    Messages: ``"<what>: duplicate JSON member 'x'"``, ``"<what> is not valid UTF-8 JSON: ..."``,
    ``"<what> must be a JSON object, got list"``.
    """
    try:
        value = loads_strict(raw)
        # A lone surrogate (from a \ud800 escape) would crash whoever stores or prints it later.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except JsonRefused as e:
        raise error(f"{what}: {e}") from e
    except (ValueError, RecursionError) as e:  # UnicodeError, JSONDecodeError are ValueErrors
        raise error(f"{what} is not valid UTF-8 JSON: {e}") from e
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def std_b64(raw: bytes) -> str:
    """Padded standard base64 (RFC 4648 section 4)."""
    return base64.b64encode(raw).decode("ascii")


def std_b64_decode(text: object, what: str, error: type[Exception] = ValueError) -> bytes:
    """Strict inverse of :func:`std_b64`: one encoding per byte string."""
    if not isinstance(text, str) or not text.isascii():
        raise error(f"{what} must be standard base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise error(f"{what} is not valid standard base64: {e}") from e
    if std_b64(raw) != text:
        raise error(f"{what} is not canonical base64 (padding or trailing bits)")
    return raw


# --- ids and hashes --------------------------------------------------------------------------


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_hex64(value: object) -> bool:
    """A SHA-256 in lowercase hex."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def is_id(value: object) -> bool:
    """An id usable as an object-name component: 1-64 of ``A-Za-z0-9._-``, no leading dot."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def is_device_id(value: object) -> bool:
    """A device id: ``dw-`` and 16 base32 characters (see :func:`uplink.keys.device_id_for`)."""
    return isinstance(value, str) and DEVICE_ID_RE.fullmatch(value) is not None


# --- timestamps (wire and file-name formats; the human display format lives in the agent) ----


def iso_utc(epoch_s: float) -> str:
    """ISO 8601 UTC with milliseconds, as the clip store writes it (``...T19:30:00.123+00:00``)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def iso_utc_seconds(epoch_s: float) -> str:
    """ISO 8601 UTC to the second (``2026-05-01T19:30:00+00:00``): CLI JSON, ledger heads."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def iso_utc_z(epoch_s: float) -> str:
    """ISO 8601 UTC to the second with ``Z`` (``2026-05-01T19:30:00Z``): event and clip times."""
    return iso_utc_seconds(epoch_s).replace("+00:00", "Z")


def compact_utc(epoch_s: float) -> str:
    """``20260501T193000Z``: a UTC stamp for file names (e.g. a set-aside corrupt database)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y%m%dT%H%M%SZ")


def is_iso_utc(value: object) -> bool:
    """An ISO 8601 date-time in UTC (``Z`` or ``+00:00``) that names a real instant."""
    if not isinstance(value, str) or _ISO_UTC.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13
        return False
    return True


# --- topics ----------------------------------------------------------------------------------


def device_topic(device_id: str, *parts: str) -> str:
    """``doorward/<device_id>/<parts...>``, the one way every device topic is spelled.

    ``device_topic(id, "cmd")`` owner commands, ``"resp"`` replies, ``"status"``, ``"events"``,
    ``"clips"`` (uplink.messages.TOPICS), ``"pair", "owner"`` / ``"pair", "device"`` pairing;
    ``device_topic(id, "+")`` subscribes to a device's one-level topics, ``"#"`` to all.
    """
    return "/".join((TOPIC_ROOT, device_id, *parts))
