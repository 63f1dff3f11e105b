"""``file:`` decoded in a child process (agent/camera/file_process.py), as ``doorward run`` plays
it: the same frames as the in-process FileCamera, the end of the file ends frames(), no orphan when
the daemon dies, the child's failures raised in the parent."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.camera.file import FileCamera
from agent.camera.file_process import FileProcessCamera
from agent.camera.sources import make_source, parse_source, preflight
from agent.errors import CameraError
from tests.helpers import assert_child_ends_with_parent, process_gone
from tests.unit.test_sources import _write_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    _write_video(path, n=24)  # libx264's defaults: B-frames, so pts differ from decode order
    return path


def hashes(cam: FileCamera | FileProcessCamera) -> list[str]:
    with cam:
        return [hashlib.sha1(f.main.tobytes() + f.luma.tobytes() + repr((f.index, f.t)).encode())
                .hexdigest() for f in cam.frames()]


@pytest.mark.parametrize("luma_width", [160, None])
def test_frames_match_the_in_process_file_camera(video: Path, luma_width: int | None) -> None:
    there = FileProcessCamera(video, luma_width=luma_width)
    assert hashes(there) == hashes(FileCamera(video, luma_width=luma_width))
    assert len(hashes(FileCamera(video))) == 24
    assert there.decoder_pid is None  # the with block ended the child
    assert there.source_child_cpu_s > 0 and there.source_cpu_s > 0
    assert (there.fps, there.width, there.height) == (10.0, 320, 240)


def test_the_end_of_the_file_ends_frames_and_close_ends_the_child(video: Path) -> None:
    cam = FileProcessCamera(video)
    cam.open()
    pid = cam.decoder_pid
    assert pid is not None
    frames = list(cam.frames())
    assert [f.index for f in frames] == list(range(24))
    assert frames[1].t == pytest.approx(0.1)
    cam.close()
    assert cam.decoder_pid is None and process_gone(pid)


def test_realtime_paces_at_the_file_timestamps(video: Path) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    with FileProcessCamera(video, realtime=True, clock=lambda: now[0], sleep=sleep) as cam:
        ts = [f.t for f in cam.frames()]
    assert len(ts) == 24 and sum(sleeps) == pytest.approx(ts[-1])
    assert cam.dropped_frames == 0


def test_run_decodes_in_a_child_and_analyze_in_process(video: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from agent.camera.sources import make_source, parse_source
        cam = make_source(parse_source({f"file:{video}"!r}), width=1280, height=720, fps=15.0,
                          luma_width=160, realtime=False, child_source=True)
        with cam:
            next(iter(cam.frames()))
        print(type(cam).__name__, "agent.camera.file" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["FileProcessCamera", "False"]  # no decoder in the daemon
    in_process = make_source(parse_source(f"file:{video}"), width=1280, height=720, fps=15.0,
                             luma_width=320, realtime=False)
    assert isinstance(in_process, FileCamera)  # analyze, tests and tools decode in-process


def test_missing_unreadable_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        preflight(parse_source(f"file:{tmp_path / 'nope.mp4'}"))
    with pytest.raises(CameraError, match="not a readable file"):
        preflight(parse_source(f"file:{tmp_path}"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    cam = FileProcessCamera(bad)
    with pytest.raises(CameraError, match=r"^video file .*bad.mp4 cannot be decoded"):
        cam.open()
    assert cam.decoder_pid is None


def test_the_child_exits_when_the_parent_is_killed(video: Path) -> None:
    code = textwrap.dedent(f"""
        import time
        from agent.camera.file_process import FileProcessCamera
        cam = FileProcessCamera({str(video)!r})
        cam.open()
        frames = cam.frames()
        next(frames)  # and the next one is being decoded ahead
        print(cam.decoder_pid, flush=True)
        time.sleep(600)
    """)
    assert_child_ends_with_parent(code, "the decoder child to exit")


def test_a_child_that_dies_is_an_error_naming_how(video: Path) -> None:
    with FileProcessCamera(video) as cam:
        frames = cam.frames()
        next(frames)
        pid = cam.decoder_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CameraError, match="decoder process was killed by signal 9"):
            for _ in range(3):
                next(frames)


def test_a_damaged_file_is_an_error_naming_it(video: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    data = video.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    cam = FileProcessCamera(cut)
    with pytest.raises(CameraError, match=r"^video file .*cut.mp4 "), cam:
        list(cam.frames())
    assert cam.decoder_pid is None
