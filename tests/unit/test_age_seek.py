"""uplink.age_seek: any plaintext range of a whole age file, decrypting only what it needs."""

from __future__ import annotations

import os

import pytest

from uplink.age import CHUNK_SIZE, AgeError, PayloadError, TruncatedError, encrypt
from uplink.age_seek import SeekableAge
from uplink.agekeys import Identity

ME = Identity.generate()
OTHER = Identity.generate()


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1,
                                  3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_every_range_matches_the_plaintext(size: int) -> None:
    plain = os.urandom(size)
    f = SeekableAge(encrypt(plain, [ME.recipient]), [ME])
    assert f.size == size
    cuts = sorted({0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 5, size // 2, size - 1, size})
    for a in cuts:
        for b in cuts:
            if 0 <= a <= b <= size:
                assert f.read(a, b) == plain[a:b], (a, b)
    assert f.read(0, size + 100) == plain


def test_only_the_needed_chunks_are_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = os.urandom(5 * CHUNK_SIZE)
    f = SeekableAge(encrypt(plain, [ME.recipient]), [ME])
    opened: list[int] = []
    real = f.chunk
    monkeypatch.setattr(f, "chunk", lambda i: opened.append(i) or real(i))
    assert f.read(3 * CHUNK_SIZE + 10, 3 * CHUNK_SIZE + 20) == plain[3 * CHUNK_SIZE + 10:][:10]
    assert opened == [3]


def test_wrong_identity_is_refused() -> None:
    with pytest.raises(AgeError, match="identities"):
        SeekableAge(encrypt(b"x" * 10, [ME.recipient]), [OTHER])


def test_altered_chunk_fails_when_read_and_not_before() -> None:
    sealed = bytearray(encrypt(os.urandom(3 * CHUNK_SIZE), [ME.recipient]))
    sealed[-CHUNK_SIZE] ^= 1  # inside the last sealed chunk
    f = SeekableAge(sealed, [ME])
    assert len(f.read(0, CHUNK_SIZE)) == CHUNK_SIZE
    with pytest.raises(PayloadError, match="fails authentication"):
        f.read(0, f.size)


def test_cut_at_a_chunk_boundary_is_detected() -> None:
    """Removing the final chunk leaves a file whose new last chunk carries the wrong flag."""
    sealed = encrypt(os.urandom(2 * CHUNK_SIZE + 100), [ME.recipient])
    cut = sealed[: len(sealed) - (100 + 16)]
    f = SeekableAge(cut, [ME])
    with pytest.raises(PayloadError):
        f.read(f.size - 1, f.size)


def test_payload_without_final_chunk_is_truncated() -> None:
    sealed = encrypt(b"hello", [ME.recipient])
    with pytest.raises(TruncatedError):
        SeekableAge(sealed[:-10], [ME])
