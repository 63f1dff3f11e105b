"""Random access into a whole age file: decrypt only the 64 KiB chunks a byte range needs.

An HTTP range request for a clip (the owner's web app streams decrypted MP4 to a ``<video>``
element) asks for bytes ``[start, end]`` of the plaintext. Chunk ``i`` of an age payload holds
plaintext bytes ``[i * 64 KiB, (i + 1) * 64 KiB)`` and is sealed with a nonce made of its index and
a last-chunk flag, so it opens on its own once the file key is known. The file's total size tells
which chunk is the last, so each chunk is opened with exactly the flag it must carry: a cut,
reordered or appended file fails here as it does in :class:`uplink.age.AgeReader`.

Usage::

    sealed = store.get_bytes(key, size)              # check its SHA-256 against the manifest
    f = SeekableAge(sealed, [identity])              # header, identity and MAC checked here
    f.size                                           # plaintext length
    for piece in f.iter_range(start, end + 1):       # verified plaintext, chunk by chunk
        send(piece)

The sealed bytes stay in memory (or any ``bytes``-like buffer, e.g. an ``mmap`` of a sealed
file); plaintext only ever exists one chunk at a time in the caller's hands.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from uplink.age import (
    CHUNK_SIZE,
    NONCE_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    HeaderError,
    HeaderMacError,
    PayloadError,
    TruncatedError,
    parse_header,
)
from uplink.age import _unwrap_file_key as unwrap_file_key  # the one X25519 unwrap

if TYPE_CHECKING:
    from uplink.agekeys import Identity

__all__ = ["SeekableAge"]


def _hkdf(key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


class SeekableAge:
    """A complete age file in memory, readable at any plaintext offset (see the module doc).

    Construction parses the header, finds the file key with ``identities`` and checks the header
    MAC (HeaderError, HeaderMacError, NoIdentityMatch); a payload whose length cannot be a whole
    age payload is TruncatedError. Chunks are authenticated as they are read (PayloadError).
    """

    def __init__(self, sealed: bytes | bytearray | memoryview,
                 identities: Sequence[Identity]) -> None:
        self._data = memoryview(sealed)
        header = parse_header(bytes(self._data[: min(len(self._data), 1 << 20)]))
        if header is None:
            raise HeaderError("the data ends inside the age header: not a whole file")
        file_key = unwrap_file_key(header.stanzas, identities)
        mac = HMAC(_hkdf(file_key, None, b"header"), hashes.SHA256())
        mac.update(header.mac_input)
        try:
            mac.verify(header.mac)
        except InvalidSignature as e:
            raise HeaderMacError("header MAC does not verify: the header was altered") from e
        start = header.length
        nonce = bytes(self._data[start : start + NONCE_SIZE])
        if len(nonce) < NONCE_SIZE:
            raise HeaderError(f"file ends {len(nonce)} bytes into the 16-byte payload nonce")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._payload = start + NONCE_SIZE
        sealed_len = len(self._data) - self._payload
        chunks = -(-sealed_len // SEALED_CHUNK_SIZE)
        tail = sealed_len - (chunks - 1) * SEALED_CHUNK_SIZE if chunks else 0
        if chunks == 0 or tail < TAG_SIZE:
            raise TruncatedError(f"the payload ({sealed_len} bytes) ends without a final chunk")
        if tail == TAG_SIZE and chunks > 1:
            raise PayloadError("the final chunk is empty: only an empty payload may end so")
        self.chunks = chunks
        self.size = sealed_len - chunks * TAG_SIZE

    def chunk(self, index: int) -> bytes:
        """Plaintext chunk ``index`` (0-based), authenticated with its position and last flag."""
        if not 0 <= index < self.chunks:
            raise IndexError(f"chunk {index} of {self.chunks}")
        last = index == self.chunks - 1
        at = self._payload + index * SEALED_CHUNK_SIZE
        sealed = bytes(self._data[at : at + SEALED_CHUNK_SIZE])
        nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        try:
            return self._aead.decrypt(nonce, sealed, None)
        except InvalidTag:
            raise PayloadError(f"chunk {index} fails authentication: the file was altered") \
                from None

    def iter_range(self, start: int, stop: int) -> Iterator[bytes]:
        """Verified plaintext bytes ``[start, stop)`` (clamped to the size), chunk by chunk."""
        stop = min(stop, self.size)
        pos = max(start, 0)
        while pos < stop:
            index, offset = divmod(pos, CHUNK_SIZE)
            plain = self.chunk(index)
            piece = plain[offset : offset + (stop - pos)]
            if not piece:  # cannot happen for a consistent size; never loop forever
                raise PayloadError(f"chunk {index} is shorter than its position says")
            pos += len(piece)
            yield piece

    def read(self, start: int, stop: int) -> bytes:
        """:meth:`iter_range` joined."""
        return b"".join(self.iter_range(start, stop))
