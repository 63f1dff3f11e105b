"""Ed25519 identity helpers: ids and fingerprints from public keys, strict base64url, key files.

Wiring (device, first start):

    key = Ed25519PrivateKey.generate()
    save_ed25519(data_dir / "device.key", key)            # 0600, atomic, never overwrites
    write_private_file(data_dir / "setup.secret", os.urandom(16))
    device_id = device_id_for(public_raw(key))            # "dw-" + 16 base32 chars

Later starts call ``load_ed25519`` / ``read_private_file``; both refuse files that group or
others can read (as ssh does), so a key copied with a loose mode is noticed instead of used.

Ids and fingerprints are all derived from SHA-256 of the raw 32-byte public key:
``device_id_for`` and ``key_id_for`` keep the first 80 bits (16 lowercase base32 chars), enough
to name a key and to resist a second preimage; ``fingerprint`` keeps 128 bits as hex groups for
humans to compare. None of them holds serial numbers or personal data.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from uplink.errors import (  # re-exported: this module's callers catch them here
    KeyFileError as KeyFileError,
)

PUBLIC_KEY_SIZE = 32
_B64U_CHARS = re.compile(r"[A-Za-z0-9_-]*")
_MAX_KEY_FILE = 4096


def _check_public(public_raw: bytes) -> bytes:
    if not isinstance(public_raw, bytes | bytearray) or len(public_raw) != PUBLIC_KEY_SIZE:
        size = len(public_raw) if isinstance(public_raw, bytes | bytearray) else type(public_raw)
        raise ValueError(f"an Ed25519 public key is 32 raw bytes, got {size}")
    return bytes(public_raw)


def _b32_digest(public_raw: bytes) -> str:
    digest = hashlib.sha256(_check_public(public_raw)).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:16]


def device_id_for(public_raw: bytes) -> str:
    """The device id for a device's raw Ed25519 public key: ``dw-`` + 16 base32 chars."""
    return "dw-" + _b32_digest(public_raw)


def key_id_for(public_raw: bytes) -> str:
    """The key id (JWS ``kid``/``iss``) for an owner's raw Ed25519 public key: ``k-`` + 16 chars."""
    return "k-" + _b32_digest(public_raw)


def fingerprint(public_raw: bytes) -> str:
    """First 16 bytes of SHA-256(pub) as 8 groups of 4 lowercase hex digits joined by ``-``."""
    digest = hashlib.sha256(_check_public(public_raw)).hexdigest()[:32]
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of a private or public Ed25519 key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return raw_public_bytes(pub)


# public_bytes_raw()/private_bytes_raw() arrived in cryptography 40; the Pi's apt cryptography is
# 38.0.4 (scripts/pi-pins.txt), so the raw encodings are spelled out, as every version accepts.
def raw_public_bytes(pub: Ed25519PublicKey | X25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 or X25519 public key."""
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private_bytes(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    """The raw 32 bytes of an Ed25519 or X25519 private key (unencrypted: handle with care)."""
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def b64u(raw: bytes) -> str:
    """Unpadded base64url (RFC 4648 section 5), as JOSE uses it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Strict inverse of :func:`b64u`: ValueError on padding, whitespace, other characters,
    an impossible length, or non-zero trailing bits (so each byte string has one encoding)."""
    if not isinstance(text, str):
        raise ValueError(f"base64url text must be str, got {type(text).__name__}")
    if not _B64U_CHARS.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("invalid base64url: only A-Z a-z 0-9 - _ without padding are allowed")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64u(raw) != text:
        raise ValueError("invalid base64url: non-canonical trailing bits")
    return raw


def write_private_file(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically and durably.

    The bytes go to a private temporary file in the same directory, are fsynced, then either
    hard-linked to ``path`` (default: fails if it exists, so a key is never clobbered by accident)
    or, with ``overwrite=True``, renamed over it. The directory is fsynced afterwards.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise KeyFileError(
                    f"{target} exists: refusing to overwrite it (delete it first, e.g. by a "
                    "factory reset, or pass overwrite=True)"
                ) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the new directory entry durable
    finally:
        os.close(dir_fd)


def read_private_file(path: str | os.PathLike[str], *, max_bytes: int = _MAX_KEY_FILE) -> bytes:
    """Read a file written by :func:`write_private_file`; refuse it if group/others may read it."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise KeyFileError(f"{target} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot open {target}: {e.strerror} (a symlink is refused)") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{target} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"{target} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can read it; "
                f"run 'chmod 600 {target}' if it was never exposed, otherwise make a new key"
            )
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise KeyFileError(f"{target} is larger than {max_bytes} bytes: not a key file")
    return data


def save_ed25519(
    path: str | os.PathLike[str], key: Ed25519PrivateKey, *, overwrite: bool = False
) -> None:
    """Store ``key`` as unencrypted PKCS#8 PEM (it holds the 32-byte seed), 0600, atomically.

    Refuses to overwrite an existing file unless ``overwrite=True``. Readable by
    ``openssl pkey -in FILE``.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem, overwrite=overwrite)


def load_ed25519(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load a key written by :func:`save_ed25519`. Raises KeyFileError naming the problem."""
    data = read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{os.fspath(path)} is not an unencrypted PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{os.fspath(path)} holds a {type(key).__name__}, expected an Ed25519 private key"
        )
    return key


def ed25519_public_from_raw(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519PublicKey from 32 raw bytes; ValueError if the size or encoding is wrong."""
    return Ed25519PublicKey.from_public_bytes(_check_public(raw))
