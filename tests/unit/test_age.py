"""uplink.age (streaming age v1 writer/reader) and uplink.agekeys (Bech32 keys, identity files)."""

from __future__ import annotations

import array
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from uplink.age import (
    CHUNK_SIZE,
    SEALED_CHUNK_SIZE,
    AgeError,
    AgeReader,
    AgeWriter,
    HeaderError,
    HeaderMacError,
    NoIdentityMatch,
    PayloadError,
    TruncatedError,
    decrypt,
    encrypt,
    parse_header,
    sealed_prefix_length,
)
from uplink.agekeys import (
    Bech32Error,
    Identity,
    Recipient,
    bech32_decode,
    bech32_encode,
    load_identities,
    write_identity_file,
)

VECTOR_KEY = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"
ALICE = Identity.generate()
BOB = Identity.generate()


def payload(n: int, seed: int = 7) -> bytes:
    """Deterministic pseudo-random bytes: no two chunks are alike, so swapped chunks cannot pass."""
    return hashlib.shake_256(seed.to_bytes(4, "big")).digest(n) if n else b""


def header_len(sealed: bytes) -> int:
    header = parse_header(sealed)
    assert header is not None
    return header.length


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("n", [0, 1, 65535, 65536, 65537, 3 * 65536])
def test_round_trip_sizes_and_chunk_layout(n: int) -> None:
    data = payload(n)
    sealed = encrypt(data, [ALICE.recipient])
    # A full last chunk stays the last one; only an empty payload has an empty chunk.
    chunks = max(1, -(-n // CHUNK_SIZE))
    assert len(sealed) == header_len(sealed) + 16 + n + 16 * chunks
    assert decrypt(sealed, [ALICE]) == data


@pytest.mark.parametrize("piece", [1, 1000, 65535, 65536, 65537, 200_000])
def test_streaming_writes_in_pieces_match(piece: int) -> None:
    data = payload(3 * 65536 + 123)
    sink = io.BytesIO()
    with AgeWriter(sink, [ALICE.recipient]) as writer:
        for i in range(0, len(data), piece):
            assert writer.write(data[i : i + piece]) == len(data[i : i + piece])
        assert writer.tell() == len(data)
    assert writer.bytes_out == len(sink.getvalue())
    assert decrypt(sink.getvalue(), [ALICE]) == data


def test_writer_accepts_bytearray_and_non_byte_memoryviews() -> None:
    words = array.array("H", range(40_000))
    sink = io.BytesIO()
    with AgeWriter(sink, [ALICE.recipient]) as writer:
        writer.write(bytearray(b"ab"))
        writer.write(memoryview(words))
    assert decrypt(sink.getvalue(), [ALICE]) == b"ab" + words.tobytes()


def test_multiple_recipients_each_decrypt_and_stranger_does_not() -> None:
    sealed = encrypt(b"ring at 07:12", [ALICE.recipient, BOB.recipient])
    assert decrypt(sealed, [ALICE]) == b"ring at 07:12"
    assert decrypt(sealed, [BOB]) == b"ring at 07:12"
    assert decrypt(sealed, [Identity.generate(), BOB]) == b"ring at 07:12"
    with pytest.raises(NoIdentityMatch, match="none of 1 identities"):
        decrypt(sealed, [Identity.generate()])


def test_no_recipients_is_refused() -> None:
    with pytest.raises(AgeError, match="no recipients"):
        AgeWriter(io.BytesIO(), [])


def test_each_file_has_fresh_keys() -> None:
    a, b = encrypt(b"x", [ALICE.recipient]), encrypt(b"x", [ALICE.recipient])
    assert a != b
    assert a.split(b"\n")[1] != b.split(b"\n")[1]  # fresh ephemeral share per stanza


# ---------------------------------------------------------------------------- writer behaviour


def test_flush_never_emits_a_partial_chunk_and_close_leaves_sink_open() -> None:
    sink = io.BytesIO()
    writer = AgeWriter(sink, [ALICE.recipient])
    start = len(sink.getvalue())
    writer.write(b"x" * 100)
    writer.flush()
    assert len(sink.getvalue()) == start
    writer.write(b"y" * CHUNK_SIZE)  # the first chunk is now full and more data has followed
    assert len(sink.getvalue()) == start + SEALED_CHUNK_SIZE
    writer.close()
    writer.close()  # idempotent
    assert not sink.closed
    assert decrypt(sink.getvalue(), [ALICE]) == b"x" * 100 + b"y" * CHUNK_SIZE
    with pytest.raises(AgeError, match="closed"):
        writer.write(b"more")


def test_exception_inside_with_leaves_file_truncated_not_complete() -> None:
    sink = io.BytesIO()
    with pytest.raises(RuntimeError), AgeWriter(sink, [ALICE.recipient]) as writer:
        writer.write(payload(2 * CHUNK_SIZE + 5))
        raise RuntimeError("camera died")
    with pytest.raises(TruncatedError):
        decrypt(sink.getvalue(), [ALICE])
    reader = AgeReader(io.BytesIO(sink.getvalue()), [ALICE], allow_truncated=True)
    assert reader.read() == payload(2 * CHUNK_SIZE + 5)[: 2 * CHUNK_SIZE]
    assert reader.truncated


class TrickleSink:
    """A raw sink that takes at most 1000 bytes per call, like an unbuffered pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data[:1000]
        return min(len(data), 1000)


class TrickleSource:
    """A source that returns at most 777 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._f.read(min(size, 777))


def test_short_writes_and_short_reads_are_completed() -> None:
    data = payload(CHUNK_SIZE + 4321)
    sink = TrickleSink()
    with AgeWriter(sink, [ALICE.recipient]) as writer:
        writer.write(data)
    assert writer.bytes_out == len(sink.data)
    assert AgeReader(TrickleSource(bytes(sink.data)), [ALICE]).read() == data


class FailingSink:
    """Takes ``budget`` bytes, then fails like a full disk."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def write(self, data: bytes) -> int:
        if len(data) > self.budget:
            raise OSError(28, "No space left on device")
        self.budget -= len(data)
        return len(data)


def test_sink_failure_stops_the_writer() -> None:
    writer = AgeWriter(FailingSink(1000), [ALICE.recipient])
    with pytest.raises(OSError, match="No space"):
        writer.write(bytes(2 * CHUNK_SIZE))
    assert writer.closed
    with pytest.raises(AgeError, match="sink failed"):
        writer.write(b"x")


# ---------------------------------------------------------------------------- reader behaviour


def test_reader_small_reads_and_chunk_iteration() -> None:
    data = payload(2 * CHUNK_SIZE + 99)
    sealed = encrypt(data, [ALICE.recipient])
    reader = AgeReader(io.BytesIO(sealed), [ALICE])
    got = bytearray()
    while piece := reader.read(4097):
        assert len(piece) <= 4097
        got += piece
    assert got == data
    chunks = list(AgeReader(io.BytesIO(sealed), [ALICE]))
    assert [len(c) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 99]
    mixed = AgeReader(io.BytesIO(sealed), [ALICE])
    assert mixed.read(10) + b"".join(mixed) == data


# ---------------------------------------------------------------------------- tampering


def _flip(data: bytes, index: int, new: int | None = None) -> bytes:
    out = bytearray(data)
    out[index] = new if new is not None else out[index] ^ 0x01
    return bytes(out)


def test_tampered_byte_in_each_region() -> None:
    data = payload(3 * CHUNK_SIZE + 100)
    sealed = encrypt(data, [ALICE.recipient])
    lines = sealed.split(b"\n")
    share_at = len(lines[0]) + 1 + len("-> X25519 ")
    body_at = len(lines[0]) + 1 + len(lines[1]) + 1
    mac_at = sealed.index(b"\n--- ") + 5
    start = header_len(sealed)
    cases: list[tuple[str, bytes, type[AgeError]]] = [
        ("version", _flip(sealed, 5), HeaderError),
        ("stanza type", _flip(sealed, share_at - 2), NoIdentityMatch),  # X25519 -> X25518
        (
            "share",
            _flip(sealed, share_at, ord("A") if sealed[share_at] != ord("A") else ord("B")),
            NoIdentityMatch,
        ),
        (
            "body",
            _flip(sealed, body_at, ord("A") if sealed[body_at] != ord("A") else ord("B")),
            NoIdentityMatch,
        ),
        (
            "mac",
            _flip(sealed, mac_at, ord("A") if sealed[mac_at] != ord("A") else ord("B")),
            HeaderMacError,
        ),
        ("nonce", _flip(sealed, start + 3), PayloadError),
        ("first chunk", _flip(sealed, start + 16 + 10), PayloadError),
        ("middle chunk tag", _flip(sealed, start + 16 + 2 * SEALED_CHUNK_SIZE - 1), PayloadError),
        ("last chunk", _flip(sealed, len(sealed) - 20), PayloadError),
    ]
    for name, bad, error in cases:
        with pytest.raises(error):
            decrypt(bad, [ALICE])
        assert name  # keeps the case label visible in tracebacks


def test_corrupt_middle_chunk_is_not_mistaken_for_truncation() -> None:
    data = payload(3 * CHUNK_SIZE + 100)
    sealed = encrypt(data, [ALICE.recipient])
    bad = _flip(sealed, header_len(sealed) + 16 + SEALED_CHUNK_SIZE + 5)
    reader = AgeReader(io.BytesIO(bad), [ALICE], allow_truncated=True)
    got = bytearray()
    with pytest.raises(PayloadError, match="chunk 1 fails") as info:
        for chunk in reader:
            got += chunk
    assert not isinstance(info.value, TruncatedError)
    assert got == data[:CHUNK_SIZE]  # only the verified chunk before the damage came out


def test_altering_another_recipients_stanza_breaks_the_header_mac() -> None:
    sealed = encrypt(b"clip", [ALICE.recipient, BOB.recipient])
    lines = sealed.split(b"\n")
    bob_share_at = sum(len(x) + 1 for x in lines[:3]) + len("-> X25519 ")
    bad = _flip(sealed, bob_share_at, ord("A") if sealed[bob_share_at] != ord("A") else ord("B"))
    with pytest.raises(HeaderMacError):
        decrypt(bad, [ALICE])


def test_swapped_chunks_and_appended_data_are_rejected() -> None:
    data = payload(3 * CHUNK_SIZE + 100)
    sealed = encrypt(data, [ALICE.recipient])
    s = header_len(sealed) + 16
    c0, c1 = (
        sealed[s : s + SEALED_CHUNK_SIZE],
        sealed[s + SEALED_CHUNK_SIZE : s + 2 * SEALED_CHUNK_SIZE],
    )
    swapped = sealed[:s] + c1 + c0 + sealed[s + 2 * SEALED_CHUNK_SIZE :]
    with pytest.raises(PayloadError, match="chunk 0"):
        decrypt(swapped, [ALICE])
    with pytest.raises(PayloadError, match="final chunk"):
        decrypt(sealed + b"\x00", [ALICE])
    full = encrypt(payload(CHUNK_SIZE), [ALICE.recipient])
    with pytest.raises(PayloadError, match="data follows the final chunk"):
        decrypt(full + b"\x00" * 17, [ALICE])


# ---------------------------------------------------------------------------- truncation


def test_truncation_raises_and_allow_truncated_returns_verified_prefix() -> None:
    data = payload(3 * CHUNK_SIZE + 100)
    sealed = encrypt(data, [ALICE.recipient])
    s = header_len(sealed) + 16
    for cut, whole_chunks in [
        (s, 0),
        (s + 5, 0),
        (s + SEALED_CHUNK_SIZE, 1),
        (s + SEALED_CHUNK_SIZE + 17, 1),
        (s + 3 * SEALED_CHUNK_SIZE, 3),
        (len(sealed) - 1, 3),
    ]:
        with pytest.raises(TruncatedError):
            decrypt(sealed[:cut], [ALICE])
        reader = AgeReader(io.BytesIO(sealed[:cut]), [ALICE], allow_truncated=True)
        assert reader.read() == data[: whole_chunks * CHUNK_SIZE], cut
        assert reader.truncated
    complete = AgeReader(io.BytesIO(sealed), [ALICE], allow_truncated=True)
    assert complete.read() == data
    assert not complete.truncated


def test_cut_inside_header_or_nonce_is_a_header_error() -> None:
    sealed = encrypt(b"abc", [ALICE.recipient])
    for cut in (0, 10, header_len(sealed) - 1, header_len(sealed) + 15):
        with pytest.raises(HeaderError):
            decrypt(sealed[:cut], [ALICE])


def _crashed_file(n: int) -> bytes:
    """What a recorder leaves on disk when it dies after writing ``n`` plaintext bytes."""
    sink = io.BytesIO()
    writer = AgeWriter(sink, [ALICE.recipient])
    writer.write(payload(n))
    writer.abort()
    return sink.getvalue()


def test_sealed_prefix_length_at_many_cut_offsets() -> None:
    data = payload(4 * CHUNK_SIZE + 1000)
    sealed = encrypt(data, [ALICE.recipient])
    start = header_len(sealed) + 16
    offsets = set(range(0, len(sealed) + 1, 4099))
    for k in range(5):
        edge = start + k * SEALED_CHUNK_SIZE
        offsets |= {edge - 1, edge, edge + 1}
    offsets |= {0, 1, start - 17, start - 16, len(sealed) - 1}
    for cut in sorted(o for o in offsets if 0 <= o < len(sealed)):
        file = sealed[:cut]
        got = sealed_prefix_length(file[:CHUNK_SIZE], len(file))
        if cut < start:
            assert got is None, cut
            continue
        whole = (cut - start) // SEALED_CHUNK_SIZE
        assert got == start + whole * SEALED_CHUNK_SIZE, cut
        reader = AgeReader(io.BytesIO(file[:got]), [ALICE], allow_truncated=True)
        chunks = list(reader)
        assert len(chunks) == whole and b"".join(chunks) == data[: whole * CHUNK_SIZE], cut
        assert reader.truncated


def test_sealed_prefix_length_of_a_crashed_writer_keeps_everything_sealed() -> None:
    crashed = _crashed_file(3 * CHUNK_SIZE + 500)  # chunks 0-2 were sealed, the tail was in RAM
    got = sealed_prefix_length(crashed[:CHUNK_SIZE], len(crashed))
    assert got == len(crashed)
    reader = AgeReader(io.BytesIO(crashed), [ALICE], allow_truncated=True)
    assert reader.read() == payload(3 * CHUNK_SIZE + 500)[: 3 * CHUNK_SIZE]


def test_sealed_prefix_length_rejects_bad_input() -> None:
    with pytest.raises(HeaderError):
        sealed_prefix_length(b"not age\n", 100)
    with pytest.raises(AgeError, match="total_size"):
        sealed_prefix_length(b"x" * 10, 5)
    assert sealed_prefix_length(b"age-encryption.org/v1\n-> X25519", 10_000) is None


# ---------------------------------------------------------------------------- keys


def test_identity_string_round_trip_and_known_recipient() -> None:
    identity = Identity.parse(VECTOR_KEY)
    assert str(identity) == VECTOR_KEY
    assert (
        str(identity.recipient) == "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef"
    )
    assert Recipient.parse(str(identity.recipient)) == identity.recipient
    fresh = Identity.generate()
    assert str(Identity.parse(str(fresh))) == str(fresh)
    assert VECTOR_KEY not in repr(identity) and "age1" in repr(identity)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (VECTOR_KEY.lower(), "upper case"),
        (VECTOR_KEY[:20] + VECTOR_KEY[20:].lower(), "mixes upper and lower"),
        (VECTOR_KEY[:-1] + ("Q" if VECTOR_KEY[-1] != "Q" else "P"), "checksum"),
        (VECTOR_KEY[:-8], "checksum"),
        (VECTOR_KEY + "B", "not in|alphabet"),
        ("AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E", "post-quantum"),
        ("AGE-PLUGIN-YUBIKEY-1ABC", "plugin"),
        ("age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef", "AGE-SECRET-KEY-1"),
        ("", "AGE-SECRET-KEY-1"),
    ],
)
def test_identity_parse_errors_name_the_problem_without_echoing_secrets(
    text: str, needle: str
) -> None:
    with pytest.raises(AgeError) as info:
        Identity.parse(text)
    message = str(info.value)
    assert any(n.lower() in message.lower() for n in needle.split("|")), message
    assert VECTOR_KEY[16:40].upper() not in message.upper()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("AGE1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4Q47RYEF", "lower case"),
        ("age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryeg", "checksum"),
        ("age1qyqszqgpqyqszqgpqyqszqgp", "checksum|not an X25519"),
        ("ssh-ed25519 AAAA", "age1"),
    ],
)
def test_recipient_parse_errors(text: str, needle: str) -> None:
    with pytest.raises(AgeError) as info:
        Recipient.parse(text)
    assert any(n.lower() in str(info.value).lower() for n in needle.split("|")), str(info.value)


def test_bech32_matches_bip173_examples() -> None:
    for valid in (
        "A12UEL5L",
        "a12uel5l",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "?1ezyfcl",
    ):
        hrp, data = bech32_decode(valid)
        assert bech32_encode(hrp, data) == valid.lower()
    for invalid in ("A1G7SGD8", "10a06t8", "1qzzfhee", "a12UEL5L", "x1b4n0q5v"):
        with pytest.raises(Bech32Error):
            bech32_decode(invalid)


def test_identity_file_write_and_load(tmp_path: Path) -> None:
    path = tmp_path / "owner.key"
    write_identity_file(path, ALICE, comment="doorward owner key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("# created: ")
    assert f"# public key: {ALICE.recipient}\n" in text
    assert text.endswith(f"{ALICE}\n")
    assert [str(i) for i in load_identities(path)] == [str(ALICE)]
    assert sorted(os.listdir(tmp_path)) == ["owner.key"]  # no temporary file left behind
    with pytest.raises(AgeError, match="refusing to overwrite"):
        write_identity_file(path, BOB)
    assert load_identities(path)[0].recipient == ALICE.recipient
    assert sorted(os.listdir(tmp_path)) == ["owner.key"]
    with pytest.raises(AgeError, match="single line"):
        write_identity_file(tmp_path / "x.key", BOB, comment="a\nb")


def test_load_identities_comments_crlf_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes(f"# two keys\r\n\r\n{ALICE}\r\n# another\n{BOB}\n".encode())
    assert [i.recipient for i in load_identities(path)] == [ALICE.recipient, BOB.recipient]
    path.write_text(f"# keys\n{ALICE}\n{str(BOB).lower()}\n")
    with pytest.raises(AgeError, match="line 3") as info:
        load_identities(path)
    assert str(BOB)[16:40] not in str(info.value).upper()
    path.write_text("# nothing here\n\n")
    with pytest.raises(AgeError, match="no identities"):
        load_identities(path)


# ---------------------------------------------------------------------------- throughput


class NullSink:
    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)


@pytest.mark.parametrize("piece", [4096, 1 << 20])
def test_writer_64_mib_in_small_and_large_pieces(piece: int) -> None:
    """Sizes only; the speed (MiB/s) is `scripts/bench throughput`'s business."""
    total = 64 * 1024 * 1024
    block = memoryview(bytes(piece))
    sink = NullSink()
    with AgeWriter(sink, [ALICE.recipient]) as writer:
        for _ in range(total // piece):
            writer.write(block)
    assert writer.tell() == total and sink.n == writer.bytes_out
    assert writer.bytes_out > total + (total // CHUNK_SIZE) * 16


def test_decrypt_file_leaves_nothing_on_failure(tmp_path: Path) -> None:
    from uplink.age import decrypt_file

    owner, stranger = Identity.generate(), Identity.generate()
    sealed = tmp_path / "clip.age"
    sealed.write_bytes(encrypt(b"x" * 200_000, [owner.recipient]))
    decrypt_file(sealed, tmp_path / "ok.bin", [owner])
    assert (tmp_path / "ok.bin").read_bytes() == b"x" * 200_000
    with pytest.raises(NoIdentityMatch):
        decrypt_file(sealed, tmp_path / "no.bin", [stranger])
    cut = tmp_path / "cut.age"
    cut.write_bytes(sealed.read_bytes()[:-100])
    with pytest.raises(TruncatedError):
        decrypt_file(cut, tmp_path / "cut.bin", [owner])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.age", "cut.age", "ok.bin"]
