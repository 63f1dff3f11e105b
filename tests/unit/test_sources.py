from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from agent.camera.file import FileCamera
from agent.camera.picam import PiCamera
from agent.camera.sources import parse_source
from agent.errors import CameraError


@pytest.mark.parametrize(
    ("spec", "kind", "arg", "simulated"),
    [("sim:porch", "sim", "porch", True), ("sim", "sim", "porch", True),
     ("file:/x.mp4", "file", "/x.mp4", True), ("v4l2:/dev/video0", "v4l2", "/dev/video0", True),
     ("picamera2", "picamera2", "", False)],
)
def test_parse_source(spec: str, kind: str, arg: str, simulated: bool) -> None:
    s = parse_source(spec)
    assert (s.kind, s.arg, s.simulated) == (kind, arg, simulated)


@pytest.mark.parametrize("spec", ["", "cam:1", "file:", "picamera2:0", "rtsp://x"])
def test_bad_source_names_the_forms(spec: str) -> None:
    with pytest.raises(CameraError, match="sim:SCENE"):
        parse_source(spec)


def test_picamera2_absent_names_sim_source() -> None:
    with pytest.raises(CameraError) as err:
        PiCamera().open()
    assert "--source sim:" in str(err.value)


def _write_video(path: Path, n: int = 20, w: int = 320, h: int = 240) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            a = np.full((h * 3 // 2, w), 90, np.uint8)
            a[:h, i * 10: i * 10 + 40] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_file_camera_yields_i420_and_luma(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    _write_video(path)
    with FileCamera(path, luma_width=160) as cam:
        frames = list(cam.frames())
    assert cam.fps == 10 and (cam.width, cam.height) == (320, 240)
    assert len(frames) == 20
    assert frames[0].main.shape == (360, 320) and frames[0].luma.shape == (120, 160)
    assert frames[1].t == pytest.approx(0.1)
    assert frames[5].luma.max() > 200  # the bright bar survives decoding


def test_file_camera_realtime_paces_with_injected_clock(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    _write_video(path, n=5)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    with FileCamera(path, realtime=True, clock=lambda: now[0], sleep=sleep) as cam:
        ts = [f.t for f in cam.frames()]
    assert sum(sleeps) == pytest.approx(ts[-1])


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        FileCamera(tmp_path / "nope.mp4").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(CameraError, match="cannot be decoded"):
        FileCamera(bad).open()


def test_frames_missed_counts_gaps_only() -> None:
    from agent.camera.base import frames_missed

    assert frames_missed(None, 5.0, 1.0) == 0
    assert frames_missed(1.0, 2.0, 1.0) == 0  # on time
    assert frames_missed(1.0, 2.4, 1.0) == 0  # jitter
    assert frames_missed(1.0, 4.0, 1.0) == 2  # frames at 2 and 3 never came


def test_a_pyav_too_old_to_mux_clips_is_refused_at_start() -> None:
    from agent.errors import ConfigError
    from agent.recording.recorder import check_pyav_can_mux

    check_pyav_can_mux("18.1.0")
    check_pyav_can_mux("19.0.0")
    for old in ("10.0.0", "15.0.0"):
        with pytest.raises(ConfigError, match=rf"PyAV {old} cannot write clips.*av>=18"):
            check_pyav_can_mux(old)


def test_the_simulator_counts_its_rendering_cpu_apart() -> None:
    import itertools

    from agent.camera.sim import SimCamera, get_scene

    with SimCamera(get_scene("cat"), width=640, height=360, luma_width=160) as cam:
        painted = cam.source_cpu_s
        for _ in itertools.islice(cam.frames(), 10):
            pass
    assert 0 < painted < cam.source_cpu_s


def _write_sliced(path: Path, slices: int, n: int = 6) -> None:
    """A 320x240 clip whose every frame x264 cuts into ``slices`` slices (1 thread: no others)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.options = {"threads": "1", "slices": str(slices)}
        for i in range(n):
            a = np.full((360, 320), 90, np.uint8)
            a[:240, i * 10: i * 10 + 40] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize(("slices", "threading"), [(1, "AUTO"), (4, "SLICE")])
def test_file_camera_decodes_slices_side_by_side_when_there_are_some(
    tmp_path: Path, slices: int, threading: str
) -> None:
    path = tmp_path / "v.mp4"
    _write_sliced(path, slices)
    with FileCamera(path, luma_width=None, want_main=False) as cam:
        frames = [f.luma.copy() for f in cam.frames()]
        stream = cam._container.streams.video[0]
        assert stream.thread_type.name == threading
    assert len(frames) == 6
    assert frames[3][100, 30 + 20] > 200  # frame 3's bright bar, at x = 30..70


def test_analysis_only_decoding_matches_the_full_decode(tmp_path: Path) -> None:
    """Without deblocking (want_main=False) the luma differs by block-edge smoothing at most."""
    path = tmp_path / "v.mp4"
    _write_video(path)
    with FileCamera(path, luma_width=None, want_main=False) as cam:
        fast = [f.luma.astype(np.int16) for f in cam.frames()]
    with FileCamera(path, luma_width=None) as cam:
        full = [f.luma.astype(np.int16) for f in cam.frames()]
    assert len(fast) == len(full) == 20
    worst = max(float(np.abs(a - b).mean()) for a, b in zip(fast, full, strict=True))
    assert worst < 1.0  # mean absolute difference in grey levels, per frame

