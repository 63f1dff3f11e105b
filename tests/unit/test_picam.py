"""The picamera2 adapter against the fake picamera2 (tests/fakes): imports, opening, frames,
dropped frames, stall recovery, the hardware encoder's packets, and the composition-root choice."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from types import ModuleType

import av
import numpy as np
import pytest

from agent.app import build_encoder
from agent.camera.base import Frame
from agent.camera.picam import PiCamera, import_picamera2
from agent.camera.sim import SimCamera, get_scene
from agent.config import parse_config
from agent.errors import CameraError, ConfigError
from agent.recording.encoder import X264Encoder
from agent.recording.picam_encoder import PicameraH264Encoder, parameter_sets
from tests.fakes import install
from tests.fakes.camera_hw import FakeHardware, PatternScene

FPS = 15.0


# serial: stall bounds of a few 0.2 s frame deadlines (scripts/test runs these alone)
pytestmark = pytest.mark.serial


@pytest.fixture
def hw(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHardware]:
    yield from install(monkeypatch)


def take(cam: PiCamera, n: int) -> list[Frame]:
    """The next ``n`` frames, copied (a hardware-encoder frame's main is only valid until the
    next one is requested)."""
    out = []
    for frame in cam.frames():
        out.append(Frame(frame.index, frame.t, frame.main.copy(), frame.luma))
        if len(out) == n:
            break
    return out


# imports and opening


class _RaisingFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import picamera2`` raise like a picamera2 whose numpy ABI does not match."""

    def find_spec(self, name: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name == "picamera2" else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. "
                         "Expected 96 from C header, got 88 from PyObject")


def test_missing_picamera2_names_apt_and_sim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import raises ImportError
    with pytest.raises(CameraError) as err:
        PiCamera().open()
    assert "apt install python3-picamera2" in str(err.value)
    assert "--system-site-packages" in str(err.value) and "--source sim:porch" in str(err.value)


def test_numpy_abi_trap_names_the_numpy_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    with pytest.raises(CameraError) as err:
        import_picamera2()
    assert "numpy.dtype size changed" in str(err.value)
    assert "numpy<2" in str(err.value) and "python3-numpy" in str(err.value)


@pytest.mark.parametrize("exc", [IndexError, RuntimeError])
def test_no_camera_names_the_checks(hw: FakeHardware, exc: type[Exception]) -> None:
    hw.no_camera(exc)
    with pytest.raises(CameraError) as err:
        PiCamera().open()
    message = str(err.value)
    assert message.startswith("no camera found")
    assert "ribbon cable" in message and "rpicam-hello --list-cameras" in message
    assert "--source sim:porch" in message


def test_bad_sizes_are_a_camera_error(hw: FakeHardware) -> None:
    with pytest.raises(CameraError, match="lores no larger than main"):
        PiCamera(width=256, height=192).open()  # lores 320x240 is larger than main
    assert hw.opened == hw.closed == 1


def test_asks_for_dual_yuv420_stream_at_the_frame_rate(hw: FakeHardware) -> None:
    with PiCamera(width=640, height=480, fps=12.0):
        config = hw.cameras[0].camera_config  # type: ignore[attr-defined]
    assert config["main"]["size"] == (640, 480) and config["main"]["format"] == "YUV420"
    assert config["lores"]["size"] == (320, 240) and config["lores"]["format"] == "YUV420"
    assert config["controls"]["FrameRate"] == 12.0
    assert hw.opened == hw.closed == 1


# frames


def test_frames_carry_i420_main_lores_luma_and_sensor_time(hw: FakeHardware) -> None:
    hw.scene = PatternScene(motion=[(0.0, 60.0)])  # the square is always in view
    with PiCamera(fps=FPS) as cam:
        frames = take(cam, 8)
    assert [f.index for f in frames] == list(range(8))
    assert frames[0].t == 0.0
    assert all(f.main.shape == (1080, 1280) and f.luma.shape == (240, 320) for f in frames)
    gaps = np.diff([f.t for f in frames]) * FPS  # in frame periods, from SensorTimestamp
    assert np.allclose(gaps, np.round(gaps), atol=0.01) and (np.round(gaps) >= 1).all()
    assert cam.dropped_frames == round(sum(gaps - 1))
    assert cam.t0_ns is not None and cam.t0_ns > 0
    # the square: bright in main's Y plane and in the lores luma at the same relative place
    for f in frames:
        ys, xs = np.nonzero(f.main[:720] == 235)
        ly, lx = np.nonzero(f.luma == 235)
        assert ys.size and ly.size
        assert abs(xs.mean() / 1280 - lx.mean() / 320) < 0.02
    assert (frames[0].main[720:] == 128).all()  # U and V: grey


def test_sensor_gaps_count_as_dropped_frames(hw: FakeHardware) -> None:
    hw.skip_frames = {4, 5, 6}
    with PiCamera(fps=FPS) as cam:
        frames = take(cam, 8)
    gaps = np.round(np.diff([f.t for f in frames]) * FPS)
    assert gaps.max() >= 4  # frames 4..6 never came: a gap of 4 periods
    assert cam.dropped_frames == int(sum(gaps - 1)) >= 3


def test_strided_buffers_are_repacked_to_i420(hw: FakeHardware) -> None:
    hw.stride_align = 64  # 1000 pixels wide: 1024-byte rows, 512 for U and V
    with PiCamera(width=1000, height=500, fps=FPS) as cam:
        (frame,) = take(cam, 1)
        stride = hw.cameras[0].camera_config["main"]["stride"]  # type: ignore[attr-defined]
    assert stride == 1024
    assert frame.main.shape == (750, 1000) and frame.main.flags.c_contiguous
    expected = PatternScene().background(1000, 500, 1000)
    assert np.array_equal(frame.main[:500], expected[:500])
    assert (frame.main[500:] == 128).all()


# stalls


def test_stall_recovers_by_reopening(hw: FakeHardware) -> None:
    hw.stall(after_frames=5, duration_s=0.6)
    cam = PiCamera(fps=FPS, frame_timeout_s=0.3, max_reopens=3)
    started = time.monotonic()
    with cam:
        frames = take(cam, 12)
    assert time.monotonic() - started < 0.6 + 3 * 0.3 + 2.0
    assert cam.stalls == 1 and cam.recoveries == 1
    assert 2 <= hw.opened <= 1 + 3 and hw.closed == hw.opened  # reopened until frames came
    assert hw.cancel_calls >= 1  # the stale capture job was flushed
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and max(np.diff(ts)) >= 0.5  # one clock across the reopen
    assert cam.dropped_frames >= 6  # the stalled ~0.6 s counts as lost frames


def test_permanent_stall_raises_camera_error_within_the_bound(hw: FakeHardware) -> None:
    hw.stall(after_frames=3, duration_s=None)
    cam = PiCamera(fps=FPS, frame_timeout_s=0.2, max_reopens=2)
    started = time.monotonic()
    with pytest.raises(CameraError) as err, cam:
        take(cam, 100)
    elapsed = time.monotonic() - started
    assert "camera stalled" in str(err.value) and "2 reopen(s)" in str(err.value)
    assert "systemd restarts it" in str(err.value)
    assert elapsed < 0.2 * (1 + 2) + 2.0
    assert cam.stalls == 1 and cam.recoveries == 0
    assert hw.opened == 3 and hw.closed == 3  # nothing left open


def test_camera_gone_after_stall_says_no_camera_found(hw: FakeHardware) -> None:
    hw.stall(after_frames=3, duration_s=None, reopen_fails=True)
    cam = PiCamera(fps=FPS, frame_timeout_s=0.2, max_reopens=2, recover_within_s=2.0)
    with pytest.raises(CameraError, match=r"camera stalled.*no camera found"), cam:
        take(cam, 100)
    assert hw.opened == 1 and hw.closed == 1


# the hardware encoder


def test_hardware_encoder_packets_follow_frame_time(hw: FakeHardware) -> None:
    with PiCamera(fps=FPS) as cam:
        enc = PicameraH264Encoder(cam, gop_s=0.5)  # 8 frames: a short test
        assert not cam.copy_main and hw.cameras[0].encoders  # type: ignore[attr-defined]
        frame_ts, packets = [], []
        for frame in cam.frames():
            frame_ts.append(frame.t)
            packets += enc.encode(frame.main, frame.t)
            if len(frame_ts) == 20:
                break
        packets += enc.flush()
        enc.close()
    (h264,) = hw.encoders
    assert h264.repeat is True and h264.iperiod == 8 and h264.bitrate == enc.bitrate > 0
    assert not hw.cameras or not hw.cameras[0].encoders  # type: ignore[attr-defined]
    assert len(packets) >= 18
    assert packets[0].keyframe
    pts = [p.pts for p in packets]
    assert pts == sorted(set(pts))
    for p in packets:  # stamped with its frame's source time (to picamera2's µs)
        if frame_ts[0] <= p.t <= frame_ts[-1]:
            assert min(abs(p.t - t) for t in frame_ts) < 2e-6
    keys = [p.t for p in packets if p.keyframe]
    assert len(keys) >= 2 and all(abs(b - a - 8 / FPS) < 0.1 for a, b in pairwise(keys))
    assert enc.extradata is not None and enc.extradata == parameter_sets(packets[0].data)


def test_hardware_encoder_restarts_after_a_reopen(hw: FakeHardware) -> None:
    hw.stall(after_frames=8, duration_s=0.5)
    with PiCamera(fps=FPS, frame_timeout_s=0.3) as cam:
        enc = PicameraH264Encoder(cam)
        packets = []
        for frame in cam.frames():
            packets += enc.encode(frame.main, frame.t)
            if frame.index == 16:
                break
        packets += enc.flush()
        enc.close()
    assert cam.recoveries == 1
    after = [p for p in packets if p.t > 8 / FPS + 0.4]
    assert after and after[0].keyframe  # the new encoder starts with an I-frame
    assert [p.t for p in packets] == sorted(p.t for p in packets)


def test_parameter_sets_from_an_annexb_keyframe() -> None:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packets = []
    for i in range(3):
        frame = av.VideoFrame.from_ndarray(np.full((96, 64), 40 * i, np.uint8), format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in ctx.encode(frame)]
    extradata = parameter_sets(packets[0])
    assert extradata is not None
    assert extradata.startswith(b"\x00\x00\x00\x01\x67")  # SPS (nal_unit_type 7)
    assert b"\x00\x00\x00\x01\x68" in extradata  # PPS (8)
    assert parameter_sets(packets[1]) is None  # a P-frame has neither


# the composition root


def test_build_encoder_picks_hardware_for_the_pi_camera(hw: FakeHardware) -> None:
    with PiCamera(fps=FPS) as cam:
        auto = build_encoder(parse_config(""), cam)
        assert isinstance(auto, PicameraH264Encoder)
        auto.close()
        hard = build_encoder(parse_config("[recording]\nencoder = 'hardware'\n"), cam)
        assert isinstance(hard, PicameraH264Encoder)
        hard.close()
        soft = build_encoder(parse_config("[recording]\nencoder = 'software'\n"), cam)
        assert isinstance(soft, X264Encoder) and cam.copy_main


def test_hardware_encoder_takes_the_configured_bitrate(hw: FakeHardware) -> None:
    with PiCamera(fps=FPS) as cam:
        enc = build_encoder(parse_config("[recording]\nbitrate_kbps = 1500\n"), cam)
        for frame in cam.frames():
            enc.encode(frame.main, frame.t)
            if frame.index == 3:
                break
        enc.close()
    (h264,) = hw.encoders
    assert h264.bitrate == 1_500_000


def test_build_encoder_uses_software_for_other_sources() -> None:
    sim = SimCamera(get_scene("porch"), width=320, height=240, fps=FPS)
    assert isinstance(build_encoder(parse_config(""), sim), X264Encoder)
    with pytest.raises(ConfigError, match=r"recording\.encoder = 'hardware'.*'auto' or 'software'"):
        build_encoder(parse_config("[recording]\nencoder = 'hardware'\n"), sim)


def test_encoder_config_key_names_the_choices() -> None:
    assert parse_config("").recording.encoder == "auto"
    with pytest.raises(ConfigError, match=r"recording\.encoder = 'gpu'.*auto, hardware, software"):
        parse_config("[recording]\nencoder = 'gpu'\n")


def test_failed_privacy_mask_stops_recording_and_the_daemon(
        hw: FakeHardware, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.fakes.picamera2 as fake

    class BrokenMappedArray(fake.MappedArray):
        def __enter__(self) -> fake.MappedArray:
            # Only the mask callback's mapping (on the camera's thread) fails: if frames()'s own
            # mapping of the same buffer failed too, which error came first would be a race.
            if threading.current_thread().name == "fake-picamera2":
                raise RuntimeError("dma-buf sync failed")
            return super().__enter__()

    mask = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0))
    with PiCamera(fps=FPS) as cam:
        enc = PicameraH264Encoder(cam, privacy_masks=(mask,))
        monkeypatch.setattr(fake, "MappedArray", BrokenMappedArray)  # the fake's, not picamera2's
        with pytest.raises(CameraError, match="privacy masks could not be applied"):
            take(cam, 5)
        assert enc.encode(np.empty(0), 0.0) == [] and enc.flush() == []  # nothing unmasked kept
        enc.close()
