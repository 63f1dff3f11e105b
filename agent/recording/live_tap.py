"""Live view's muxer: the encoder's packets as an fMP4 init segment and one fragment per frame.

It takes the same packets as the pre-roll ring (``Recorder.packet_taps``), so a session starts
at once from the ring's last keyframe instead of waiting for the next one, and it never encodes
anything itself: recording and detection go on exactly as without it. One fragment per frame
(``frag_every_frame``) keeps the latency to the frame itself: the muxer writes a fragment as soon
as its frame is muxed, where ``frag_keyframe`` would hold a whole GOP back. A browser's Media
Source Extensions take these fragments as they are.

Wiring (agent/delivery/live_view.py, on the loop thread)::

    mux = LiveMuxer(recorder.stream_info)
    for seg in mux.feed(recorder.ring.packets_from(recorder.ring.last_t or 0), stamps): ...
    # each frame after: mux.feed(packets, [wall_entered] * len(packets))
    mux.init_segment, mux.codec        # once the first keyframe is muxed
    mux.close()
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from agent.recording.encoder import EncodedPacket, StreamInfo
from agent.recording.recorder import ClipOutput

LIVE_MOVFLAGS = "frag_every_frame+empty_moov+default_base_moof"


@dataclass(frozen=True)
class LiveFragment:
    """One moof+mdat; ``key``: it starts with a keyframe; ``wall``: when its frame entered the
    encoder (device wall clock)."""

    data: bytes
    key: bool
    wall: float


class _BoxSplitter:
    """Collects the muxer's bytes and cuts them at top-level box ends (ftyp+moov, moof+mdat)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.boxes: deque[tuple[bytes, bytes]] = deque()  # (type, whole box)

    def write(self, data: bytes, /) -> int:
        self._buf += data
        while len(self._buf) >= 8:
            size = int.from_bytes(self._buf[:4], "big")
            if size == 1 and len(self._buf) >= 16:
                size = int.from_bytes(self._buf[8:16], "big")
            elif size < 8:
                raise ValueError(f"live muxer wrote a box of size {size}: cannot cut it")
            if len(self._buf) < size:
                break
            self.boxes.append((bytes(self._buf[4:8]), bytes(self._buf[:size])))
            del self._buf[:size]
        return len(data)


def codec_string(init_segment: bytes) -> str:
    """The MSE codec string (``avc1.PPCCLL``) from the avcC box of ``init_segment``."""
    at = init_segment.find(b"avcC")
    if at < 0 or at + 8 > len(init_segment):
        return "avc1.42E01F"  # Constrained Baseline 3.1: what an avcC-less stream would be
    return "avc1." + init_segment[at + 5: at + 8].hex().upper()


class LiveMuxer:
    """Packets in (first must be a keyframe; earlier ones are skipped), segments out."""

    def __init__(self, info: StreamInfo) -> None:
        self._split = _BoxSplitter()
        self._out = ClipOutput(self._split, info, movflags=LIVE_MOVFLAGS)
        self._pending: deque[tuple[bool, float]] = deque()
        self._moof: bytes | None = None
        self.init_segment: bytes | None = None
        self.codec: str | None = None
        self._init_parts: list[bytes] = []

    def feed(self, packets: Sequence[EncodedPacket], walls: Sequence[float]) -> list[LiveFragment]:
        """Mux ``packets`` (``walls[i]``: when packet i's frame entered the encoder); returns the
        fragments now whole. ``init_segment`` is set once the first keyframe is muxed."""
        for p, w in zip(packets, walls, strict=True):
            if self._out.packets == 0 and not p.keyframe:
                continue
            self._pending.append((p.keyframe, w))
            self._out.write(p)
        return self._collect()

    def _collect(self) -> list[LiveFragment]:
        out: list[LiveFragment] = []
        while self._split.boxes:
            kind, box = self._split.boxes.popleft()
            if self.init_segment is None and kind in (b"ftyp", b"moov", b"free"):
                self._init_parts.append(box)
                if kind == b"moov":
                    self.init_segment = b"".join(self._init_parts)
                    self.codec = codec_string(self.init_segment)
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                key, wall = self._pending.popleft() if self._pending else (False, 0.0)
                out.append(LiveFragment(self._moof + box, key, wall))
                self._moof = None
        return out

    def close(self) -> None:
        """Free the muxer (what it still holds is not sent: the session is over)."""
        # the trailer of a session nobody watches any more: nothing in it is worth an error
        with contextlib.suppress(OSError, ValueError):
            self._out.close()


__all__ = ["LIVE_MOVFLAGS", "LiveFragment", "LiveMuxer", "codec_string"]
