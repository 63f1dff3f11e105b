"""The age v1 header: constants, strict parsing and encoding of stanzas.

No cryptography here except what the header's own structure needs; :mod:`uplink.age` builds
the writer and reader on top. Parsing is strict, as the C2SP spec requires (see the conformance
vectors): LF line endings, printable-ASCII arguments, 64-column body lines, canonical base64.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from uplink.errors import (  # re-exported: this module's callers catch them here
    AgeError as AgeError,
)
from uplink.errors import (
    HeaderError as HeaderError,
)
from uplink.errors import (
    HeaderMacError as HeaderMacError,
)
from uplink.errors import (
    NoIdentityMatch as NoIdentityMatch,
)
from uplink.errors import (
    PayloadError as PayloadError,
)
from uplink.errors import (
    TruncatedError as TruncatedError,
)

VERSION_LINE = b"age-encryption.org/v1"
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
FILE_KEY_SIZE = 16
COLUMNS = 64
_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: ``-> type args...`` then a base64 body."""

    type: str
    args: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class Header:
    """A parsed header. ``mac_input`` is the header up to and including ``---``; ``length`` counts
    every header byte including the newline after the MAC, i.e. where the payload nonce starts."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes
    length: int


def b64encode(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def b64decode(text: bytes, what: str) -> bytes:
    """Strict unpadded standard base64: no padding, no other characters, canonical trailing bits."""
    if not _B64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        raise HeaderError(f"{what}: invalid unpadded base64 {show(text)}")
    raw = base64.b64decode(text + b"=" * (-len(text) % 4))
    if b64encode(raw) != text:
        raise HeaderError(f"{what}: non-canonical base64 {show(text)}")
    return raw


def show(line: bytes) -> str:
    return repr(line[:48] + (b"..." if len(line) > 48 else b""))


def parse_header(data: bytes | bytearray) -> Header | None:
    """Parse a header from the start of ``data``; None if ``data`` ends before the header does.

    Strict, as the spec requires: LF line endings only, printable-ASCII arguments, 64-column
    body lines with a short (possibly empty) final line, canonical unpadded base64.
    Raises HeaderError.
    """
    lines = _Lines(bytes(data))
    first = lines.next()
    if first is None:
        return None
    if first != VERSION_LINE:
        if first.startswith(b"age-encryption.org/"):
            raise HeaderError(f"unsupported age version line {show(first)}: only v1 is supported")
        raise HeaderError(f"not an age v1 file: first line is {show(first)}")
    stanzas: list[Stanza] = []
    while True:
        start = lines.pos
        line = lines.next()
        if line is None:
            return None
        if line.startswith(b"--- "):
            mac = b64decode(line[4:], f"header line {lines.count} (MAC)")
            if len(mac) != 32:
                raise HeaderError(f"header MAC is {len(mac)} bytes, expected 32")
            header = Header(tuple(stanzas), mac, lines.data[: start + 3], lines.pos)
            check_stanzas(header.stanzas)
            return header
        if not line.startswith(b"-> "):
            raise HeaderError(
                f"header line {lines.count}: expected '-> ' (stanza) or '--- ' (MAC), "
                f"got {show(line)}"
            )
        stanza = _parse_stanza(line, lines)
        if stanza is None:
            return None
        stanzas.append(stanza)


class _Lines:
    """LF-terminated lines of a byte string; an unterminated tail counts as 'not yet received'."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.count = 0

    def next(self) -> bytes | None:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            return None
        line = self.data[self.pos : end]
        self.pos = end + 1
        self.count += 1
        return line


def _parse_stanza(line: bytes, lines: _Lines) -> Stanza | None:
    where = f"header line {lines.count}"
    args = line[3:].split(b" ")
    for arg in args:
        if not arg or any(c < 0x21 or c > 0x7E for c in arg):
            raise HeaderError(f"{where}: empty or non-printable stanza argument in {show(line)}")
    body = bytearray()
    while True:
        body_line = lines.next()
        if body_line is None:
            return None
        if len(body_line) > COLUMNS:
            raise HeaderError(
                f"header line {lines.count}: body line longer than {COLUMNS} columns"
            )
        body += b64decode(body_line, f"header line {lines.count} (stanza body)")
        if len(body_line) < COLUMNS:  # the short (possibly empty) line ends the body
            break
    decoded = tuple(a.decode("ascii") for a in args)
    return Stanza(decoded[0], decoded[1:], bytes(body))


def check_stanzas(stanzas: Sequence[Stanza]) -> None:
    for i, s in enumerate(stanzas):
        if s.type == "X25519":
            if len(s.args) != 1:
                raise HeaderError(f"X25519 stanza {i} has {len(s.args)} arguments, expected 1")
            share = b64decode(s.args[0].encode("ascii"), f"X25519 stanza {i} share")
            if len(share) != 32:
                raise HeaderError(f"X25519 stanza {i} share is {len(share)} bytes, expected 32")
            if len(s.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise HeaderError(f"X25519 stanza {i} body is {len(s.body)} bytes, expected 32")
        if s.type == "scrypt" and len(stanzas) != 1:
            raise HeaderError("an scrypt stanza must be the only stanza in the header")


def encode_stanza(stanza: Stanza) -> bytes:
    text = b64encode(stanza.body)
    # Every body ends with a short line, so a body that fills whole lines gets an empty last line.
    lines = [text[i : i + COLUMNS] for i in range(0, len(text) + 1, COLUMNS)]
    head = " ".join(("->", stanza.type, *stanza.args)).encode("ascii")
    return b"\n".join([head, *lines]) + b"\n"
