"""The age v1 file format (C2SP age), X25519 recipients only: streaming writer and reader.

This is how the device seals clips to their owners. Wiring:

    recipients = [Recipient.parse(s) for s in owner_recipient_strings]  # uplink.agekeys
    with open(path, "wb") as f, AgeWriter(f, recipients) as sealed:
        muxer_writes_into(sealed)  # any amount; sealed 64 KiB chunks go out as they fill
    # Leaving the block normally seals the final chunk; leaving it with an exception does not,
    # so an aborted clip stays detectably truncated instead of looking complete.

    with open(path, "rb") as f:
        plaintext = AgeReader(f, load_identities(owner_key_file)).read()

Files interoperate with the ``age`` CLI both ways. After a crash the device, which cannot
decrypt, cuts a half-written clip back to whole sealed chunks with ``sealed_prefix_length``; the
owner then reads it with ``AgeReader(..., allow_truncated=True)``.

Security properties (spec): the header MAC binds the recipient stanzas to the file key; each
64 KiB chunk is authenticated with a counter nonce and a last-chunk flag, so reordering,
truncation and appending are detected. age does not authenticate the sender: sign a manifest
holding the file's SHA-256 for that.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import os
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from uplink.age_header import (
    CHUNK_SIZE,
    FILE_KEY_SIZE,
    NONCE_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    VERSION_LINE,
    AgeError,
    Header,
    HeaderError,
    HeaderMacError,
    NoIdentityMatch,
    PayloadError,
    Stanza,
    TruncatedError,
    b64decode,
    b64encode,
    encode_stanza,
    parse_header,
)
from uplink.keys import raw_public_bytes

__all__ = [
    "CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "NONCE_SIZE",
    "SEALED_CHUNK_SIZE",
    "TAG_SIZE",
    "VERSION_LINE",
    "AgeError",
    "AgeReader",
    "AgeWriter",
    "Header",
    "HeaderError",
    "HeaderMacError",
    "NoIdentityMatch",
    "PayloadError",
    "Stanza",
    "TruncatedError",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "parse_header",
    "sealed_prefix_length",
]

if TYPE_CHECKING:
    from uplink.agekeys import Identity, Recipient

MAX_HEADER_SIZE = 1 << 20  # a header is a few hundred bytes; refuse to buffer unbounded garbage
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_ZERO_NONCE = bytes(12)
_READ_SIZE = 64 * 1024


class BinarySink(Protocol):
    """Anything with ``write(bytes)``: a file opened ``"wb"``, ``io.BytesIO``, a socket wrapper."""

    def write(self, data: bytes, /) -> int | None: ...


class BinarySource(Protocol):
    """Anything with ``read(n) -> bytes``: a file opened ``"rb"``, ``io.BytesIO``."""

    def read(self, size: int, /) -> bytes: ...


def _hkdf(key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _wrap_file_key(file_key: bytes, recipient: Recipient) -> Stanza:
    ephemeral = X25519PrivateKey.generate()  # fresh per stanza, as the spec requires
    share = raw_public_bytes(ephemeral.public_key())
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.public_bytes))
    except ValueError as e:
        raise AgeError(f"recipient {recipient} is a low-order point, not a usable key") from e
    wrap_key = _hkdf(shared, share + recipient.public_bytes, _X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return Stanza("X25519", (b64encode(share).decode("ascii"),), body)


def _unwrap_file_key(stanzas: Sequence[Stanza], identities: Sequence[Identity]) -> bytes:
    x25519 = [s for s in stanzas if s.type == "X25519"]
    for identity in identities:
        ours = identity.recipient.public_bytes
        for s in x25519:
            share = b64decode(s.args[0].encode("ascii"), "X25519 share")
            try:
                shared = identity.private_key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError as e:  # OpenSSL refuses an all-zero shared secret
                raise HeaderError("X25519 stanza has a low-order share: malformed file") from e
            if hmac.compare_digest(shared, bytes(32)):
                raise HeaderError("X25519 stanza has a low-order share: malformed file")
            wrap_key = _hkdf(shared, share + ours, _X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, s.body, None)
            except InvalidTag:
                continue  # sealed to someone else
    types = sorted({s.type for s in stanzas})
    raise NoIdentityMatch(
        f"none of {len(identities)} identities opens this file (stanza types {types}, "
        f"{len(x25519)} X25519): decrypt with an identity of one of its recipients"
    )


def _header_mac(file_key: bytes, mac_input: bytes) -> HMAC:
    mac = HMAC(_hkdf(file_key, None, b"header"), hashes.SHA256())
    mac.update(mac_input)
    return mac


def _payload_aead(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def sealed_prefix_length(head: bytes, total_size: int) -> int | None:
    """Where to cut a crashed age file so that only whole sealed chunks remain (keyless).

    ``head`` is the start of the file (enough for the header, e.g. its first 64 KiB) and
    ``total_size`` the file's size. Returns the length of header + nonce + whole 65552-byte sealed
    chunks, or None if the header or nonce is incomplete. Use it only on files whose writer never
    closed them: on a finished file it would also cut off a short final chunk. The cut file reads
    with ``AgeReader(..., allow_truncated=True)``. Raises HeaderError if the header is malformed.
    """
    if len(head) > total_size:
        raise AgeError(
            f"head is {len(head)} bytes but total_size is {total_size}: pass the file size"
        )
    header = parse_header(head)
    if header is None:
        return None
    start = header.length + NONCE_SIZE
    if total_size < start:
        return None
    return start + (total_size - start) // SEALED_CHUNK_SIZE * SEALED_CHUNK_SIZE


class AgeWriter:
    """Streaming age encryption to ``sink``; see the module docstring for wiring.

    The header and payload nonce are written at construction. ``write`` buffers into a 64 KiB
    chunk and seals a full chunk only once more data arrives (the last chunk may be full, and only
    an empty payload may end with an empty chunk). ``close`` seals the final chunk but leaves the
    sink open. ``bytes_out`` counts every byte written to the sink (header, nonce, sealed chunks).
    """

    def __init__(self, sink: BinarySink, recipients: Sequence[Recipient]) -> None:
        if not recipients:
            raise AgeError("no recipients: pass at least one owner Recipient (age1...)")
        self._sink = sink
        self.bytes_out = 0
        self._plain = 0
        self._counter = 0
        self._buf = bytearray(CHUNK_SIZE)
        self._fill = 0
        self._closed = False
        file_key = os.urandom(FILE_KEY_SIZE)
        header = b"".join(
            [
                VERSION_LINE,
                b"\n",
                *(encode_stanza(_wrap_file_key(file_key, r)) for r in recipients),
            ]
        )
        header += b"---"
        mac = b64encode(_header_mac(file_key, header).finalize())
        nonce = os.urandom(NONCE_SIZE)
        self._aead = _payload_aead(file_key, nonce)  # one AEAD object for the whole file
        self._emit(header + b" " + mac + b"\n" + nonce)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data``; returns its length. Full chunks are sealed and written as they fill."""
        if self._closed:
            raise AgeError(
                "write to a closed AgeWriter (closed, aborted or its sink failed): "
                "start a new file with a new AgeWriter"
            )
        view = memoryview(data).cast("B")
        n, pos = len(view), 0
        while pos < n:
            if self._fill == CHUNK_SIZE:  # more data follows, so the buffered chunk is not the last
                self._seal(memoryview(self._buf), last=False)
                self._fill = 0
            if self._fill == 0 and n - pos > CHUNK_SIZE:  # seal straight from the caller's memory
                self._seal(view[pos : pos + CHUNK_SIZE], last=False)
                pos += CHUNK_SIZE
                continue
            take = min(CHUNK_SIZE - self._fill, n - pos)
            self._buf[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
        self._plain += n
        return n

    def flush(self) -> None:
        """Flush the sink. Never emits a partial chunk: chunks must be full except the last."""
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Seal the final chunk and flush the sink (which stays open). Idempotent."""
        if self._closed:
            return
        self._seal(memoryview(self._buf)[: self._fill], last=True)
        self._closed = True
        self.flush()

    def abort(self) -> None:
        """Stop without sealing a final chunk: readers will report the file as truncated."""
        self._closed = True

    def tell(self) -> int:
        """Plaintext bytes accepted so far."""
        return self._plain

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return not self._closed

    def __enter__(self) -> AgeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()  # a failed recording must not look complete

    def _seal(self, chunk: memoryview, *, last: bool) -> None:
        # bytes(): cryptography before 39 (the Pi's apt 38.0.4) accepts only bytes here. One
        # 64 KiB copy per chunk, small beside the cipher itself.
        self._emit(self._aead.encrypt(_chunk_nonce(self._counter, last), bytes(chunk), None))
        self._counter += 1

    def _emit(self, data: bytes) -> None:
        rest = data
        try:
            while True:  # raw (unbuffered) sinks may take less than everything
                written = self._sink.write(rest)
                if written is None or written >= len(rest):
                    break
                if written <= 0:
                    raise AgeError(f"sink {self._sink!r} accepted no bytes: use a blocking sink")
                rest = rest[written:]
        except BaseException:
            # The sink may hold part of a chunk now; carrying on would corrupt the stream.
            self._closed = True
            raise
        self.bytes_out += len(data)


def encrypt(data: bytes, recipients: Sequence[Recipient]) -> bytes:
    """Seal ``data`` to ``recipients`` in memory; returns the age file."""
    out = io.BytesIO()
    with AgeWriter(out, recipients) as writer:
        writer.write(data)
    return out.getvalue()


class AgeReader:
    """Streaming age decryption: a read-only file-like object over ``source``.

    The header is read, matched against ``identities`` and MAC-checked at construction
    (HeaderError, HeaderMacError, NoIdentityMatch). ``read`` and iteration (one plaintext chunk at
    a time) verify every chunk before returning it: no unauthenticated plaintext ever comes out.
    If the file ends without its final chunk, TruncatedError is raised there; with
    ``allow_truncated=True`` reading ends cleanly after the last verified chunk and ``truncated``
    becomes True instead. A trailing partial chunk that fails authentication counts as truncation:
    a cut and an altered tail look the same. The source is not closed.
    """

    def __init__(
        self, source: BinarySource, identities: Sequence[Identity], *, allow_truncated: bool = False
    ) -> None:
        self._source = source
        self._allow_truncated = allow_truncated
        self.truncated = False
        self._pending = bytearray()  # ciphertext read from the source but not consumed yet
        self._eof = False
        header = self._read_header()
        file_key = _unwrap_file_key(header.stanzas, identities)
        try:
            _header_mac(file_key, header.mac_input).verify(header.mac)
        except InvalidSignature as e:
            raise HeaderMacError("header MAC does not verify: the header was altered") from e
        nonce = self._take(NONCE_SIZE)
        if len(nonce) < NONCE_SIZE:
            raise HeaderError(f"file ends {len(nonce)} bytes into the 16-byte payload nonce")
        self._aead = _payload_aead(file_key, nonce)
        self._counter = 0
        self._done = False
        self._error: PayloadError | None = None  # raised again on every later read
        self._ready = b""  # the current verified chunk, handed out from _ready_pos on
        self._ready_pos = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` verified plaintext bytes (all remaining if negative); b"" at the end."""
        if size < 0:
            return b"".join(self)
        parts: list[bytes] = []
        while size > 0:
            if self._ready_pos >= len(self._ready):
                chunk = self._next_chunk()
                if chunk is None:
                    break
                self._ready, self._ready_pos = chunk, 0
                continue
            piece = self._ready[self._ready_pos : self._ready_pos + size]
            self._ready_pos += len(piece)
            size -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        """Verified plaintext chunk by chunk (at most 64 KiB each)."""
        if self._ready_pos < len(self._ready):
            rest = self._ready[self._ready_pos :]
            self._ready, self._ready_pos = b"", 0
            yield rest
        while (chunk := self._next_chunk()) is not None:
            if chunk:
                yield chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop reading; the source stays open."""
        self._done = True
        self._ready, self._ready_pos = b"", 0

    def __enter__(self) -> AgeReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fill(self, n: int) -> None:
        """Read until ``n`` bytes are pending or the source is exhausted (reads may be short)."""
        while len(self._pending) < n and not self._eof:
            block = self._source.read(max(n - len(self._pending), _READ_SIZE))
            if block:
                self._pending += block
            else:
                self._eof = True

    def _take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self._pending[:n])
        del self._pending[:n]  # cheap: CPython bytearrays drop a prefix without moving the rest
        return out

    def _read_header(self) -> Header:
        while True:
            header = parse_header(self._pending)
            if header is not None:
                del self._pending[: header.length]
                return header
            if self._eof:
                size = len(self._pending)
                raise HeaderError(
                    f"input ends inside the age header ({size} bytes): not a whole file"
                )
            if len(self._pending) > MAX_HEADER_SIZE:
                raise HeaderError(
                    f"no end of header within {MAX_HEADER_SIZE} bytes: not an age file"
                )
            self._fill(len(self._pending) + 1)

    def _next_chunk(self) -> bytes | None:
        """The next verified plaintext chunk, or None when done."""
        if self._error is not None:
            raise self._error
        if self._done:
            return None
        index = self._counter
        sealed = self._take(SEALED_CHUNK_SIZE)
        if len(sealed) == SEALED_CHUNK_SIZE:
            self._fill(1)
            return self._full_chunk(sealed, index, more=bool(self._pending))
        if len(sealed) < TAG_SIZE:
            return self._truncated(f"the payload ends after {index} chunks without a final chunk")
        plain = self._open(sealed, last=True)
        if plain is None:
            return self._truncated(
                f"the last {len(sealed)} bytes (chunk {index}) do not verify as a final chunk: "
                "the file was cut mid-chunk or altered"
            )
        if not plain and index > 0:
            raise self._fail(f"final chunk {index} is empty: only an empty payload may end so")
        self._done = True
        return plain

    def _full_chunk(self, sealed: bytes, index: int, *, more: bool) -> bytes:
        # The flag is not visible in the ciphertext: try the likely one first, then the other.
        plain = self._open(sealed, last=not more)
        if plain is not None:
            self._done = not more
            return plain
        plain = self._open(sealed, last=more)
        if plain is None:
            raise self._fail(f"chunk {index} fails authentication: the file was altered")
        if more:  # a final chunk with data after it: release it, then report the trailing data
            self._error = PayloadError(f"data follows the final chunk {index}: altered or appended")
        # else: a non-final chunk at the very end; the next call reports the truncation
        return plain

    def _open(self, sealed: bytes, *, last: bool) -> bytes | None:
        try:
            plain = self._aead.decrypt(_chunk_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            return None
        self._counter += 1
        return plain

    def _truncated(self, reason: str) -> bytes | None:
        if self._allow_truncated:
            self.truncated = True
            self._done = True
            return None
        raise self._fail(
            f"{reason}: pass allow_truncated=True to read the verified prefix", TruncatedError
        )

    def _fail(self, message: str, kind: type[PayloadError] = PayloadError) -> PayloadError:
        self._error = kind(message)
        return self._error


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """Open an in-memory age file with any of ``identities``; returns the plaintext."""
    with AgeReader(io.BytesIO(data), identities) as reader:
        return reader.read()


def decrypt_file(src: str | os.PathLike[str], dest: str | os.PathLike[str],
                 identities: Sequence[Identity], *, allow_truncated: bool = False,
                 progress: Callable[[int], None] | None = None) -> None:
    """Decrypt ``src`` into ``dest`` via ``dest.partial`` and a rename, so ``dest`` never holds
    unauthenticated or partial plaintext; on any error the partial file is removed and the
    AgeError or OSError propagates. ``progress(n)``: called after each MiB with the bytes of
    ``src`` read so far."""
    partial = f"{os.fspath(dest)}.partial"
    try:
        with open(src, "rb") as fin, open(partial, "wb") as fout:
            reader = AgeReader(fin, identities, allow_truncated=allow_truncated)
            while chunk := reader.read(1 << 20):
                fout.write(chunk)
                if progress is not None:
                    progress(fin.tell())
        os.replace(partial, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
