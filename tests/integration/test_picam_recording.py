"""The hardware-encoder path end to end, against the fake picamera2 (whose H264Encoder is real
libx264): PiCamera -> picamera2 H264Encoder -> our Output -> Recorder -> fragmented MP4 -> age ->
store. The sealed clip is decrypted with uplink.age and decoded with PyAV and ffprobe."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from agent.camera.picam import PiCamera
from agent.recording.encoder import EncodedPacket
from agent.recording.picam_encoder import PicameraH264Encoder
from agent.recording.recorder import Recorder
from agent.store import ClipRecord, ClipStore
from tests.fakes import install
from tests.fakes.camera_hw import FakeHardware, PatternScene
from tests.helpers import ffprobe
from uplink.age import AgeReader
from uplink.agekeys import Identity

FPS = 15.0
W, H = 640, 360


@pytest.fixture
def hw(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHardware]:
    yield from install(monkeypatch)


class Tap:
    """A VideoEncoder that passes everything through and remembers the packets it returned."""

    def __init__(self, inner: PicameraH264Encoder) -> None:
        self.inner = inner
        self.packets: list[EncodedPacket] = []
        self.codec_name, self.width, self.height = inner.codec_name, inner.width, inner.height
        self.fps, self.time_base = inner.fps, inner.time_base

    @property
    def extradata(self) -> bytes | None:
        return self.inner.extradata

    def encode(self, main: np.ndarray, t: float) -> list[EncodedPacket]:
        return self._keep(self.inner.encode(main, t))

    def flush(self) -> list[EncodedPacket]:
        return self._keep(self.inner.flush())

    def close(self) -> None:
        self.inner.close()

    def _keep(self, packets: list[EncodedPacket]) -> list[EncodedPacket]:
        self.packets += packets
        return packets


def record(cam: PiCamera, recorder: Recorder, start_t: float, end_t: float) -> ClipRecord | None:
    """Push frames; start a clip at the first frame at or after ``start_t``, end it at
    ``end_t``."""
    clip = None
    for frame in cam.frames():
        recorder.push(frame)
        if not recorder.recording and clip is None and frame.t >= start_t:
            assert recorder.start_clip(frame.t, event_id=1, reason="motion")
        if recorder.recording and frame.t >= end_t:
            clip = recorder.end_clip(frame.t)
            break
    return clip


def decode(mp4: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(mp4)) as container:
        return list(container.decode(video=0))


def open_sealed(path: Path, identity: Identity) -> bytes:
    with open(path, "rb") as f:
        return AgeReader(f, [identity]).read()


def new_store(path: Path) -> ClipStore:
    store = ClipStore(path, max_bytes=1 << 30, retention_days=30, min_free_bytes=0)
    store.recover()
    return store


def test_hardware_encoded_clip_is_sealed_and_plays(hw: FakeHardware, tmp_path: Path) -> None:
    hw.scene = PatternScene(motion=[(0.0, 100.0)])
    identity = Identity.generate()
    store = new_store(tmp_path / "data")
    with PiCamera(width=W, height=H, fps=FPS) as cam:
        tap = Tap(PicameraH264Encoder(cam, gop_s=1.0))
        recorder = Recorder(tap, store, [identity.recipient], pre_roll_s=1.0,
                            max_trigger_delay_s=0.5)
        clip = record(cam, recorder, start_t=2.2, end_t=3.6)
        recorder.close()
    assert clip is not None and not clip.truncated
    # the pre-roll starts at the I-frame at or before 2.2 - 1.0 s: the one at ~1.0 s
    keys = [p.t for p in tap.packets if p.keyframe]
    assert clip.source_start_s == pytest.approx(max(k for k in keys if k <= 1.2 + 1e-6))
    in_clip = [p for p in tap.packets
               if clip.source_start_s <= p.t <= clip.source_end_s - 1 / FPS + 1e-6]
    mp4 = open_sealed(clip.path, identity)
    frames = decode(mp4)
    assert len(frames) == len(in_clip) >= 20
    key_times = [float(f.time) for f in frames if f.key_frame]
    assert len(key_times) >= 2
    assert all(abs(b - a - 1.0) < 0.15 for a, b in pairwise(key_times))
    assert frames[0].width == W and frames[0].height == H
    plain = tmp_path / "clip.mp4"  # for ffprobe only
    plain.write_bytes(mp4)
    probe = ffprobe(plain)
    assert probe["codec"] == "h264" and probe["frames"] == len(in_clip)
    assert probe["duration"] == pytest.approx(clip.duration_s, abs=0.1)
    assert clip.snapshot_path is not None  # taken from the camera buffer view


def test_privacy_mask_is_black_in_hardware_encoded_clips(hw: FakeHardware,
                                                        tmp_path: Path) -> None:
    hw.scene = PatternScene(motion=[(0.0, 100.0)], square=0.5)  # a big bright square
    identity = Identity.generate()
    store = new_store(tmp_path / "data")
    left_half = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
    with PiCamera(width=W, height=H, fps=FPS) as cam:
        encoder = PicameraH264Encoder(cam, privacy_masks=(left_half,))
        recorder = Recorder(encoder, store, [identity.recipient], pre_roll_s=0.5)
        clip = record(cam, recorder, start_t=0.5, end_t=2.0)
        recorder.close()
    assert clip is not None
    frames = decode(open_sealed(clip.path, identity))
    assert frames
    for frame in frames:
        y = frame.to_ndarray(format="gray")
        assert y[:, : W // 2 - 8].max() < 40  # masked: black (Y 16) up to coding noise
        assert y[:, W // 2 + 8:].mean() > 60  # the rest is the textured porch


def test_packets_before_extradata_still_mux(hw: FakeHardware, tmp_path: Path) -> None:
    """The Recorder describes the stream when it is built, before the first keyframe: the muxer
    then takes SPS/PPS from the clip's first keyframe (repeat=True puts them on every one)."""
    identity = Identity.generate()
    store = new_store(tmp_path / "data")
    with PiCamera(width=W, height=H, fps=FPS) as cam:
        encoder = PicameraH264Encoder(cam)
        recorder = Recorder(encoder, store, [identity.recipient], pre_roll_s=0.0)
        assert encoder.extradata is None
        clip = record(cam, recorder, start_t=0.0, end_t=1.0)
        assert encoder.extradata is not None
        recorder.close()
    assert clip is not None
    frames = decode(open_sealed(clip.path, identity))
    assert len(frames) >= 10 and frames[0].key_frame
    assert encoder.time_base == Fraction(1, 90_000)
