"""A new age header for other recipients: hand over a sealed clip without re-uploading it.

An age file is a header (recipient stanzas and a MAC keyed by the file key) followed by a payload
sealed under a key derived from the file key and the payload nonce. Whoever can unwrap the file
key (the owner) can write a second header, for another recipient (a requester), with the same
file key and a fresh MAC. ``new header + original payload`` is then a valid age file for the new
recipient only: the original object in the bucket is untouched, and nothing but the few hundred
header bytes has to be stored.

The device cannot do this: it forgets the file key once a clip is sealed. The broker and bucket
operators cannot either: they never hold an identity.

Usage::

    sealed = store.get_bytes(clip_key)                 # the owner checks its manifest hash first
    header = rewrap_header(sealed, [owner_identity], [requester_recipient])
    store.put_bytes(header_key, header)                # small object under the request's prefix
    # requester: joined = header + payload_of(sealed) opens with the requester identity only
    joined = join_header(header, sealed)

Everything here reuses :mod:`uplink.age` (stanza wrap/unwrap, header MAC) and
:mod:`uplink.age_header` (strict parsing and encoding); nothing is hand-rolled.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, InvalidTag

from uplink.age import (
    MAX_HEADER_SIZE,
    _chunk_nonce,
    _header_mac,
    _payload_aead,
    _unwrap_file_key,
    _wrap_file_key,
)
from uplink.age_header import (
    FILE_KEY_SIZE,
    NONCE_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    VERSION_LINE,
    Header,
    HeaderError,
    HeaderMacError,
    PayloadError,
    TruncatedError,
    encode_stanza,
    parse_header,
)

if TYPE_CHECKING:
    from uplink.agekeys import Identity, Recipient

__all__ = [
    "decrypt_with_file_key", "file_key_of", "header_length", "join_header", "payload_of",
    "rewrap_header",
]


def _parsed(sealed: bytes | bytearray | memoryview, what: str) -> Header:
    header = parse_header(bytes(memoryview(sealed)[:MAX_HEADER_SIZE]))
    if header is None:
        raise HeaderError(f"{what} ends inside its age header: not a whole age file")
    return header


def header_length(sealed: bytes | bytearray | memoryview) -> int:
    """Bytes of the age header at the start of ``sealed`` (where the payload nonce starts)."""
    return _parsed(sealed, "the sealed file").length


def payload_of(sealed: bytes | bytearray | memoryview) -> bytes:
    """The payload (nonce and sealed chunks) of an age file: everything after its header."""
    return bytes(memoryview(sealed)[header_length(sealed):])


def rewrap_header(sealed: bytes | bytearray | memoryview, identities: Sequence[Identity],
                  recipients: Sequence[Recipient]) -> bytes:
    """A new header for ``recipients`` only, for the same file key as ``sealed``'s header.

    ``sealed`` needs only to start with the whole header (the payload is not read). The old
    header's MAC is checked first, so an altered header is never re-issued (HeaderMacError);
    NoIdentityMatch if no identity opens it. The result ends with the newline after the MAC:
    append the original payload to get a complete age file.
    """
    if not recipients:
        raise ValueError("rewrap_header needs at least one recipient")
    file_key = file_key_of(sealed, identities)
    mac_input = VERSION_LINE + b"\n"
    for recipient in recipients:
        mac_input += encode_stanza(_wrap_file_key(file_key, recipient))
    mac_input += b"---"
    mac = _header_mac(file_key, mac_input).finalize()
    return mac_input + b" " + base64.b64encode(mac).rstrip(b"=") + b"\n"


def join_header(header: bytes, sealed: bytes | bytearray | memoryview) -> bytes:
    """``header`` (from :func:`rewrap_header`) followed by the payload of ``sealed``."""
    own = _parsed(header, "the new header")
    if own.length != len(header):
        raise HeaderError(f"the new header has {len(header) - own.length} bytes after its MAC")
    return header + payload_of(sealed)


def file_key_of(sealed: bytes | bytearray | memoryview, identities: Sequence[Identity]) -> bytes:
    """The file key of ``sealed``'s header, opened with ``identities``, its MAC checked."""
    header = _parsed(sealed, "the sealed file")
    file_key = _unwrap_file_key(header.stanzas, identities)
    _check_mac(header, file_key)
    return file_key


def _check_mac(header: Header, file_key: bytes) -> None:
    try:
        _header_mac(file_key, header.mac_input).verify(header.mac)
    except InvalidSignature as e:
        raise HeaderMacError("header MAC does not verify: the age header was altered or the "
                             "file key is not this file's") from e


def decrypt_with_file_key(sealed: bytes | bytearray | memoryview, file_key: bytes) -> bytes:
    """The plaintext of a whole age file given its file key (no identity needed).

    This is how a bundle's checker shows that ``ID.mp4`` is exactly the plaintext of the sealed
    object the device signed: the key must make the original header's MAC verify (so it is that
    file's key: HeaderMacError otherwise) and every chunk must authenticate (PayloadError).
    """
    if len(file_key) != FILE_KEY_SIZE:
        raise HeaderError(f"a file key is {FILE_KEY_SIZE} bytes, got {len(file_key)}")
    header = _parsed(sealed, "the sealed file")
    _check_mac(header, file_key)
    data = memoryview(sealed)[header.length:]
    if len(data) < NONCE_SIZE + TAG_SIZE:
        raise TruncatedError("the payload ends before its first chunk")
    aead = _payload_aead(file_key, bytes(data[:NONCE_SIZE]))
    body = data[NONCE_SIZE:]
    out = bytearray()
    chunks = -(-len(body) // SEALED_CHUNK_SIZE)
    for i in range(chunks):
        piece = bytes(body[i * SEALED_CHUNK_SIZE:(i + 1) * SEALED_CHUNK_SIZE])
        try:
            out += aead.decrypt(_chunk_nonce(i, i == chunks - 1), piece, None)
        except InvalidTag:
            raise PayloadError(f"chunk {i} fails authentication: the file was altered") from None
    return bytes(out)
