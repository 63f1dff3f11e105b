"""C2SP CCTV age conformance vectors (tests/vectors/age, see its README.md) against uplink.age."""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from uplink.age import (
    AgeReader,
    HeaderError,
    HeaderMacError,
    NoIdentityMatch,
    PayloadError,
    decrypt,
)
from uplink.agekeys import Identity

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors" / "age"


@dataclass(frozen=True)
class Vector:
    name: str
    meta: dict[str, tuple[str, ...]]  # keys may repeat (two identities), so every value is a tuple
    body: bytes

    def get(self, key: str) -> str | None:
        values = self.meta.get(key, ())
        return values[0] if values else None


def load_vector(path: Path) -> Vector:
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    assert sep, f"{path.name}: no blank line after the key: value header"
    meta: dict[str, list[str]] = {}
    for line in head.decode("utf-8").splitlines():
        key, _, value = line.partition(": ")
        meta.setdefault(key, []).append(value)
    compressed = meta.get("compressed", [None])[0]
    if compressed == "zlib":
        body = zlib.decompress(body)
    else:
        assert compressed is None, f"{path.name}: unknown compression {compressed!r}"
    return Vector(path.name, {k: tuple(v) for k, v in meta.items()}, body)


def x25519_identities(vector: Vector) -> list[str]:
    return [i for i in vector.meta.get("identity", ()) if i.startswith("AGE-SECRET-KEY-1")]


def skip_reason(vector: Vector) -> str | None:
    """Why a vector tests a feature uplink.age does not offer; None if it must run."""
    if vector.get("armored") == "yes":
        return "ASCII armor is not offered (clips are binary files)"
    if x25519_identities(vector):
        return None
    if "passphrase" in vector.meta:
        return "scrypt passphrase recipients are not offered"
    if any(i.startswith("AGE-SECRET-KEY-PQ-") for i in vector.meta.get("identity", ())):
        return "post-quantum hybrid (ML-KEM) recipients are not offered"
    return None  # no identity at all (e.g. 'empty'): must fail in the header for any identity


VECTORS = sorted(
    (load_vector(p) for p in VECTOR_DIR.iterdir() if p.is_file() and p.name != "README.md"),
    key=lambda v: v.name,
)


def test_vector_set_is_complete_and_mostly_run() -> None:
    assert len(VECTORS) == 143  # the CCTV age/testdata set at the pinned commit
    run = [v for v in VECTORS if skip_reason(v) is None]
    assert len(run) > 60, f"only {len(run)} vectors would run: the skip rule is too broad"


def _identities(vector: Vector) -> list[Identity]:
    texts = x25519_identities(vector)
    return [Identity.parse(t) for t in texts] if texts else [Identity.generate()]


def _released_prefix(vector: Vector, identities: list[Identity]) -> tuple[bytes, Exception | None]:
    """Plaintext handed out chunk by chunk before the reader stopped, and what stopped it."""
    out = bytearray()
    try:
        for chunk in AgeReader(io.BytesIO(vector.body), identities):
            out += chunk
    except PayloadError as e:
        return bytes(out), e
    return bytes(out), None


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector(vector: Vector) -> None:
    reason = skip_reason(vector)
    if reason is not None:
        pytest.skip(reason)
    identities = _identities(vector)
    expect = vector.get("expect")
    if expect == "success":
        plaintext = decrypt(vector.body, identities)
        assert hashlib.sha256(plaintext).hexdigest() == vector.get("payload")
    elif expect == "no match":
        with pytest.raises(NoIdentityMatch):
            decrypt(vector.body, identities)
    elif expect == "HMAC failure":
        with pytest.raises(HeaderMacError):
            decrypt(vector.body, identities)
    elif expect == "header failure":
        with pytest.raises(HeaderError) as info:
            decrypt(vector.body, identities)
        assert not isinstance(info.value, HeaderMacError), "structural failure reported as bad MAC"
    elif expect == "payload failure":
        with pytest.raises(PayloadError):
            decrypt(vector.body, identities)
        # Chunks verified before the failure may come out; they must be exactly the expected ones.
        released, error = _released_prefix(vector, identities)
        assert error is not None
        assert hashlib.sha256(released).hexdigest() == vector.get("payload")
    else:
        pytest.fail(f"{vector.name}: unknown expectation {expect!r}")
