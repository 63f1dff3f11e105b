"""uplink.keys: ids, fingerprints, strict base64url, key files."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from uplink.keys import (
    KeyFileError,
    b64u,
    b64u_decode,
    device_id_for,
    ed25519_public_from_raw,
    fingerprint,
    key_id_for,
    load_ed25519,
    public_raw,
    read_private_file,
    save_ed25519,
    write_private_file,
)

PUB = bytes(range(32))


def test_ids_follow_the_spec() -> None:
    digest = hashlib.sha256(PUB).digest()
    b32 = base64.b32encode(digest).decode().lower()
    assert device_id_for(PUB) == "dw-" + b32[:16]
    assert key_id_for(PUB) == "k-" + b32[:16]
    hexd = digest[:16].hex()
    assert fingerprint(PUB) == "-".join(hexd[i : i + 4] for i in range(0, 32, 4))
    assert len(fingerprint(PUB)) == 8 * 4 + 7


def test_ids_pinned_values() -> None:
    # Pinned so an accidental change of the derivation (which would orphan every device) fails.
    assert device_id_for(PUB) == "dw-mmg42klgyqzwneis"
    assert key_id_for(PUB) == "k-mmg42klgyqzwneis"
    assert fingerprint(PUB) == "630d-cd29-66c4-3366-9112-5448-bbb2-5b4f"


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_ids_reject_wrong_sizes(bad: bytes) -> None:
    for f in (device_id_for, key_id_for, fingerprint):
        with pytest.raises(ValueError, match="32 raw bytes"):
            f(bad)


def test_different_keys_different_ids() -> None:
    a, b = (public_raw(Ed25519PrivateKey.generate()) for _ in range(2))
    assert device_id_for(a) != device_id_for(b)
    assert fingerprint(a) != fingerprint(b)


@given(st.binary(max_size=100))
def test_b64u_round_trip(raw: bytes) -> None:
    text = b64u(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64u_decode(text) == raw


@pytest.mark.parametrize(
    "bad", ["AA==", "A", "AB+/", "AB/C", " AAA", "AAA\n", "AAA.", "QR", "QUJ", "é"]
)
def test_b64u_decode_is_strict(bad: str) -> None:
    # "QR": non-zero trailing bits ("QQ" is canonical for b"A"); "QUJ" likewise for b"AB" ("QUI").
    with pytest.raises(ValueError, match="base64url"):
        b64u_decode(bad)


def test_b64u_decode_rejects_bytes() -> None:
    with pytest.raises(ValueError, match="str"):
        b64u_decode(b"AAAA")  # type: ignore[arg-type]


def test_save_load_round_trip(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "device.key"
    save_ed25519(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_raw(load_ed25519(path)) == public_raw(key)
    assert [p.name for p in tmp_path.iterdir()] == ["device.key"]  # no temporary left behind


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = Ed25519PrivateKey.generate()
    save_ed25519(path, first)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        save_ed25519(path, Ed25519PrivateKey.generate())
    assert public_raw(load_ed25519(path)) == public_raw(first)
    second = Ed25519PrivateKey.generate()
    save_ed25519(path, second, overwrite=True)
    assert public_raw(load_ed25519(path)) == public_raw(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.key"]


def test_load_refuses_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_ed25519(path, Ed25519PrivateKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_ed25519(path)


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_ed25519(tmp_path / "missing.key")
    junk = tmp_path / "junk.key"
    write_private_file(junk, b"not a key")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_ed25519(junk)
    from cryptography.hazmat.primitives import serialization

    x = tmp_path / "x25519.key"
    write_private_file(x, X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(KeyFileError, match="expected an Ed25519"):
        load_ed25519(x)
    link = tmp_path / "link.key"
    link.symlink_to(junk)
    with pytest.raises(KeyFileError, match="symlink"):
        read_private_file(link)


def test_private_file_round_trip_and_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "setup.secret"
    write_private_file(path, b"\x01" * 16)
    assert read_private_file(path) == b"\x01" * 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyFileError, match="larger than 8"):
        read_private_file(path, max_bytes=8)


def test_public_from_raw() -> None:
    key = Ed25519PrivateKey.generate()
    pub = ed25519_public_from_raw(public_raw(key))
    pub.verify(key.sign(b"m"), b"m")
    with pytest.raises(ValueError):
        ed25519_public_from_raw(bytes(31))
