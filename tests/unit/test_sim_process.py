"""The simulator in a child process (agent/camera/sim/process.py): the same frames as the
in-process renderer, no orphan when the daemon dies, the child's failures raised in the parent."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.camera.sim import SimCamera, get_scene
from agent.camera.sim.process import SimProcessCamera
from agent.camera.sources import make_source, parse_source
from agent.errors import CameraError
from tests.helpers import assert_child_ends_with_parent
from tests.helpers import process_gone as gone

W, H, LUMA_W = 320, 180, 160  # small frames keep the tests fast
ROOT = Path(__file__).resolve().parents[2]


def hashes(cam: SimCamera | SimProcessCamera, count: int) -> list[str]:
    out = []
    with cam:
        for frame in cam.frames():
            out.append(hashlib.sha1(frame.main.tobytes() + frame.luma.tobytes()).hexdigest())
            if len(out) == count:
                break
    return out


@pytest.mark.parametrize("name", ["porch", "dusk_visit"])  # dusk_visit: the codec round trip
def test_frames_match_the_in_process_renderer(name: str) -> None:
    here = SimCamera(get_scene(name, seed=5), width=W, height=H, luma_width=LUMA_W, seed=5)
    there = SimProcessCamera(get_scene(name, seed=5), width=W, height=H, luma_width=LUMA_W,
                             seed=5)
    assert hashes(there, 24) == hashes(here, 24)
    assert there.simulator_pid is None  # the with block ended the child
    assert there.source_child_cpu_s > 0


def test_a_finite_scene_ends_and_close_ends_the_child() -> None:
    cam = SimProcessCamera(get_scene("visit"), width=W, height=H, luma_width=LUMA_W, fps=1.0)
    cam.open()
    pid = cam.simulator_pid
    assert pid is not None
    frames = list(cam.frames())
    assert len(frames) == cam.scene_frames
    assert [f.index for f in frames] == list(range(len(frames)))
    cam.close()
    assert cam.simulator_pid is None and gone(pid)


def test_the_daemon_source_renders_in_a_child_without_the_renderer_modules() -> None:
    code = textwrap.dedent("""
        import sys
        from agent.camera.sources import make_source, parse_source
        cam = make_source(parse_source("sim:porch"), width=320, height=180, fps=15.0,
                          luma_width=160, realtime=False, child_source=True)
        with cam:
            next(iter(cam.frames()))
        print(sorted(m for m in sys.modules if m.startswith("agent.camera.sim.")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    loaded = out.stdout
    assert "agent.camera.sim.process" in loaded
    for renderer_module in ("render", "backdrop", "effects", "source", "codec"):
        assert f"agent.camera.sim.{renderer_module}'" not in loaded
    in_process = make_source(parse_source("sim:porch"), width=W, height=H, fps=15.0,
                             luma_width=LUMA_W, realtime=False)
    assert isinstance(in_process, SimCamera)  # tests and tools keep the in-process renderer


def test_the_child_exits_when_the_parent_is_killed() -> None:
    code = textwrap.dedent("""
        import sys, time
        from agent.camera.sim import get_scene
        from agent.camera.sim.process import SimProcessCamera
        cam = SimProcessCamera(get_scene("porch"), width=320, height=180, luma_width=160)
        cam.open()
        frames = cam.frames()
        next(frames)  # and the next one is being rendered ahead
        print(cam.simulator_pid, flush=True)
        time.sleep(600)
    """)
    assert_child_ends_with_parent(code, "the simulator child to exit")


def test_an_error_in_the_child_is_raised_in_the_parent() -> None:
    # the child, with a renderer that fails at frame 3
    failing = textwrap.dedent("""
        import runpy, sys
        from agent.camera.sim import source
        render = source.SimCamera.render_frame
        def broken(self, index):
            if index == 3:
                raise RuntimeError("the sensor model broke")
            return render(self, index)
        source.SimCamera.render_frame = broken
        sys.argv = sys.argv[2:]
        runpy.run_module("agent.camera.sim.process", run_name="__main__")
    """)
    cam = SimProcessCamera(get_scene("porch"), width=W, height=H, luma_width=LUMA_W,
                           python=[sys.executable, "-c", failing])
    with cam, pytest.raises(CameraError, match="failed: RuntimeError: the sensor model broke"):
        for _ in cam.frames():
            pass
    assert cam.simulator_pid is None


def test_a_child_that_dies_is_an_error_naming_how() -> None:
    cam = SimProcessCamera(get_scene("porch"), width=W, height=H, luma_width=LUMA_W)
    with cam:
        frames = cam.frames()
        next(frames)
        pid = cam.simulator_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CameraError, match="simulator process was killed by signal 9"):
            for _ in range(3):
                next(frames)


def test_a_child_that_cannot_start_is_an_error() -> None:
    cam = SimProcessCamera(get_scene("porch"), width=W, height=H, luma_width=LUMA_W,
                           python=[sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(CameraError, match="exited with code 3"):
        cam.open()
    assert cam.simulator_pid is None


def test_sizes_are_checked_in_the_parent() -> None:
    with pytest.raises(CameraError, match="even sizes"):
        SimProcessCamera(get_scene("porch"), width=321, height=180)
