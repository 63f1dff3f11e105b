"""age X25519 keys: ``AGE-SECRET-KEY-1...`` identities, ``age1...`` recipients, identity files.

Wiring: the owner's tool makes a key with ``Identity.generate()`` and keeps it with
``write_identity_file`` (0600, never overwrites); the device is given only
``str(identity.recipient)`` and seals clips with ``Recipient.parse(text)``. Files interoperate
with ``age-keygen`` and ``age -i``.

Both strings are Bech32 (BIP 173 without its 90-character limit, as age uses it);
``cryptography`` has no Bech32, so the ~40 lines are here. Error messages never include secret
key text.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from uplink.errors import AgeError
from uplink.errors import (  # re-exported: this module's callers catch them here
    Bech32Error as Bech32Error,
)
from uplink.keys import raw_private_bytes, raw_public_bytes

IDENTITY_HRP = "AGE-SECRET-KEY-"
RECIPIENT_HRP = "age"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: list[int] | bytes, from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & ((1 << to_bits) - 1))
    if pad and bits:
        out.append((acc << (to_bits - bits)) & ((1 << to_bits) - 1))
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & ((1 << to_bits) - 1)):
        raise Bech32Error("Bech32 data has invalid padding bits")
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """Lower-case Bech32 of ``data`` under human-readable part ``hrp``."""
    hrp = hrp.lower()
    words = _regroup(data, 8, 5, pad=True)
    check = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(hrp as written, data). Raises Bech32Error; the message never repeats ``text``."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("Bech32 string mixes upper and lower case")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise Bech32Error("Bech32 separator '1' missing or checksum too short")
    hrp, lower = text[:pos], text.lower()
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("Bech32 prefix has non-printable characters")
    try:
        words = [_CHARSET_INDEX[c] for c in lower[pos + 1 :]]
    except KeyError:
        raise Bech32Error("Bech32 data has a character outside the Bech32 alphabet") from None
    if _polymod([*_hrp_expand(hrp.lower()), *words]) != 1:
        raise Bech32Error("Bech32 checksum mismatch: the key was mistyped or cut short")
    return hrp, bytes(_regroup(words[:-6], 5, 8, pad=False))


class Recipient:
    """An X25519 public key, ``age1...``. Equal when the keys are equal; safe to log."""

    __slots__ = ("public_bytes",)

    def __init__(self, public_bytes: bytes) -> None:
        if len(public_bytes) != 32:
            raise AgeError(f"an X25519 recipient is 32 bytes, got {len(public_bytes)}")
        self.public_bytes = bytes(public_bytes)

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """Parse ``age1...`` (lower case, as age prints it)."""
        if not text.startswith(RECIPIENT_HRP + "1"):
            if text.lower().startswith("age1"):
                raise AgeError("recipient must be lower case 'age1...' as age-keygen prints it")
            raise AgeError(f"not an age X25519 recipient (expected 'age1...'): {text[:12]!r}...")
        hrp, data = bech32_decode(text)
        if hrp != RECIPIENT_HRP or len(data) != 32:
            raise AgeError(f"{text[:12]!r}... is not an X25519 recipient (post-quantum or plugin?)")
        return cls(data)

    def __str__(self) -> str:
        return bech32_encode(RECIPIENT_HRP, self.public_bytes)

    def __repr__(self) -> str:
        return f"Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipient) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        return hash(self.public_bytes)


class Identity:
    """An X25519 private key, ``AGE-SECRET-KEY-1...``. ``repr`` shows only the public recipient."""

    __slots__ = ("_recipient", "private_key")

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self.private_key = private_key
        self._recipient = Recipient(raw_public_bytes(private_key.public_key()))

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse ``AGE-SECRET-KEY-1...`` (upper case, as age-keygen writes it)."""
        if not text.startswith(IDENTITY_HRP + "1"):
            if text.startswith(IDENTITY_HRP + "PQ-1"):
                raise AgeError("post-quantum (ML-KEM hybrid) identities are not supported")
            if text.startswith("AGE-PLUGIN-"):
                raise AgeError("age plugin identities are not supported")
            if text.upper().startswith(IDENTITY_HRP + "1"):
                raise AgeError(
                    "identity must be upper case 'AGE-SECRET-KEY-1...' as age-keygen writes it"
                )
            raise AgeError("not an age X25519 identity (expected 'AGE-SECRET-KEY-1...')")
        hrp, data = bech32_decode(text)
        if hrp != IDENTITY_HRP or len(data) != 32:
            raise AgeError(f"identity holds {len(data)} bytes, an X25519 key is 32")
        return cls(X25519PrivateKey.from_private_bytes(data))

    @property
    def recipient(self) -> Recipient:
        return self._recipient

    def __str__(self) -> str:
        return bech32_encode(IDENTITY_HRP, raw_private_bytes(self.private_key)).upper()

    def __repr__(self) -> str:
        return f"Identity(recipient={str(self._recipient)!r})"


def load_identities(path: str | os.PathLike[str]) -> list[Identity]:
    """Read an age identity file: one identity per line, ``#`` comments and blank lines ignored."""
    identities: list[Identity] = []
    text = Path(path).read_text(encoding="utf-8")
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(Identity.parse(line))
        except AgeError as e:
            raise AgeError(f"{os.fspath(path)}, line {number}: {e}") from e
    if not identities:
        raise AgeError(f"{os.fspath(path)} holds no identities: expected AGE-SECRET-KEY-1... lines")
    return identities


def write_identity_file(
    path: str | os.PathLike[str], identity: Identity, *, comment: str | None = None
) -> None:
    """Write ``identity`` as age-keygen does, created 0600 and atomically; never overwrites.

    The text goes to a private temporary file in the same directory, is fsynced, then hard-linked to
    ``path`` (which fails if ``path`` exists, so an existing key is never clobbered).
    """
    target = Path(path)
    if comment is not None and ("\n" in comment or "\r" in comment):
        raise AgeError("identity file comment must be a single line")
    created = datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [f"# created: {created}", f"# public key: {identity.recipient}"]
    if comment is not None:
        lines.append(f"# {comment}")
    lines.append(str(identity))
    text = "\n".join(lines) + "\n"
    directory = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise AgeError(f"{target} exists: refusing to overwrite an identity file") from None
    finally:
        os.unlink(tmp)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the new directory entry durable
    finally:
        os.close(dir_fd)
