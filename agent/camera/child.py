"""A camera source in a child process: the pipe protocol and the child's lifecycle, shared by
``sim:`` (:mod:`agent.camera.sim.process`) and ``file:`` (:mod:`agent.camera.file_process`).

Usage, the parent's end (a camera's ``open``/``frames``/``close`` call these)::

    child = ChildSource("file:visit.mp4", "decoder", "agent.camera.file_process", [path, "320"])
    info = child.start()                # CameraError if it fails or cannot start
    got = child.fetch(0, ahead=True)    # (t, main, luma), or None once the source has ended
    child.stop()                        # closes its stdin: the child exits

and the child's (its module's ``__main__``)::

    sys.exit(serve_main(MyRenderer.from_argv, sys.argv[1:]))   # a Renderer: info() and frame(i)

Why: none of the simulator nor a file decoder exists on a Pi, where the camera's ISP makes the
frames. Out of the daemon's process, the daemon's own memory is the one a Pi would see, and the
child's is measured apart (``scripts/bench run``).

The protocol, on the child's stdin/stdout: the parent writes a frame index (:data:`_REQUEST`), the
child answers a header (:data:`_HEADER`: kind, payload length, its CPU seconds so far, the frame's
time) and the payload: ``R`` ready (a JSON :class:`SourceInfo`), ``F`` a frame (the I420 image
then the luma image), ``X`` the end of the source, ``E`` an error (a traceback, or a
:class:`~agent.errors.CameraError`'s own message). The parent asks for the next frame as soon as
it has one, so the child makes it while the daemon works on this one. The child ends when its
stdin reaches EOF: when the camera closes, or when the daemon dies in any way (even SIGKILL: the
kernel closes the pipe), so no orphan is left; it ignores SIGINT and SIGTERM, which the daemon's
process group or unit also receives, so that the daemon, not a signal, decides when frames stop.
A child that dies or fails is a CameraError in the daemon, naming its exit code or its error.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Protocol

import numpy as np

from agent.errors import CameraError

#: The child's answer: kind (b"R", b"F", b"X", b"E"), payload bytes, its CPU seconds, frame time.
_HEADER = struct.Struct("<cQdd")
#: The parent's request: the index of the frame wanted.
_REQUEST = struct.Struct("<q")
_EXIT_WAIT_S = 5.0  # for the child to exit after its stdin closes, before it is killed


@dataclass(frozen=True)
class SourceInfo:
    """What the child tells the parent once ready: the frames' rate and sizes."""

    fps: float
    width: int
    height: int
    luma_rows: int
    luma_cols: int
    duration_s: float | None = None


class Renderer(Protocol):
    """The child's side of a source: it makes the frames the parent asks for."""

    def info(self) -> SourceInfo: ...

    def frame(self, index: int) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Frame ``index`` as (t, I420 main, luma), or None once the source has ended."""
        ...


class ChildSource:
    """The parent's end of a child process that makes frames (see the module docstring).

    ``name`` names the source in errors, ``what`` the child ("simulator", "decoder"); ``module``
    is run as ``python -m module *args``; ``python`` replaces the interpreter and its flags (by
    default the daemon's own, -O/-OO included, so the child runs like it)."""

    def __init__(self, name: str, what: str, module: str, args: list[str],
                 python: list[str] | None = None) -> None:
        self.name, self.what = name, what
        self._args = [*(python or [sys.executable, *(["-O"] * sys.flags.optimize)]),
                      "-m", module, *args]
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: SourceInfo | None = None
        self._mains: list[np.ndarray] = []
        self._turn = 0
        self._pending: int | None = None  # the index the child is making ahead
        self.read_cpu_s = 0.0  # this process's CPU taking frames from the pipe
        self.child_cpu_s = 0.0  # the child's own CPU, as it last said

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self) -> SourceInfo:
        """Start the child and wait until it says it is ready (CameraError if it does not)."""
        if self._proc is not None and self._info is not None:
            return self._info
        self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      bufsize=0)
        self._pending = None
        try:
            kind, size, _ = self._header()
            payload = bytearray(size)
            self._read_into(memoryview(payload))
            if kind != b"R":
                raise CameraError(f"{self.name}: the {self.what} process answered {kind!r} "
                                  "before it was ready")
            info = SourceInfo(**json.loads(payload))
        except BaseException:
            self.stop()
            raise
        self._info = info
        # two recording images in turn: a frame's main stays valid until the frame after next
        self._mains = [np.empty((info.height * 3 // 2, info.width), np.uint8) for _ in range(2)]
        return info

    def fetch(self, index: int, *, ahead: bool) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Frame ``index`` as (t, main, luma), or None at the end of the source; ``ahead``: ask
        for ``index + 1`` at once, for the child to make while this one is processed."""
        started = time.thread_time()
        if self._pending is not None and self._pending != index:
            self._read_frame()  # made ahead for nothing: the consumer skipped it
            self._pending = None
        if self._pending is None:
            self._request(index)
        got = self._read_frame()
        self._pending = None
        if got is not None and ahead:
            self._request(index + 1)
            self._pending = index + 1
        self.read_cpu_s += time.thread_time() - started
        return got

    def stop(self) -> None:
        """End the child (EOF on its stdin; killed if it has not exited in 5 s)."""
        proc, self._proc, self._pending, self._info = self._proc, None, None, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _request(self, index: int) -> None:
        proc = self._running()
        assert proc.stdin is not None
        try:
            proc.stdin.write(_REQUEST.pack(index))
        except BrokenPipeError:
            raise self._died() from None

    def _read_frame(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        assert self._info is not None
        kind, size, t = self._header()
        if kind == b"X":
            return None
        main = self._mains[self._turn]
        luma = np.empty((self._info.luma_rows, self._info.luma_cols), np.uint8)
        want = main.nbytes + luma.nbytes
        if kind != b"F" or size != want:
            raise CameraError(f"{self.name}: the {self.what} process sent {kind!r} of {size} "
                              f"bytes where a frame of {want} was due; it is out of step: restart")
        self._read_into(main.data.cast("B"))
        self._read_into(luma.data.cast("B"))
        self._turn ^= 1
        return t, main, luma

    def _header(self) -> tuple[bytes, int, float]:
        head = bytearray(_HEADER.size)
        self._read_into(memoryview(head))
        kind, size, cpu_s, t = _HEADER.unpack(head)
        self.child_cpu_s = cpu_s
        if kind == b"E":
            payload = bytearray(size)
            self._read_into(memoryview(payload))
            lines = payload.decode(errors="replace").strip().splitlines() or ["?"]
            if len(lines) == 1:  # a CameraError: its message names the fix
                raise CameraError(lines[0])
            raise CameraError(f"{self.name}: the {self.what} process failed: {lines[-1]} (its "
                              "traceback is in the log just above)")
        return kind, size, t

    def _read_into(self, view: memoryview) -> None:
        stdout = self._running().stdout
        assert stdout is not None
        got = 0
        while got < len(view):
            n = stdout.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise self._died()
            got += n

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        return self._proc

    def _died(self) -> CameraError:
        proc = self._running()
        try:
            code = proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        self.stop()
        how = ("closed its output" if code is None
               else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        return CameraError(f"{self.name}: the {self.what} process {how} (its own error, if any, "
                           "is in the log just above): restart doorward run")


def _serve(make: Callable[[list[str]], Renderer], argv: list[str], requests: IO[bytes],
           answers: IO[bytes]) -> int:
    """The child: make the frames asked for on ``requests``, answer on ``answers``."""

    def answer(kind: bytes, *payload: bytes | memoryview, t: float = 0.0) -> None:
        size = sum(len(memoryview(p).cast("B")) for p in payload)
        answers.write(_HEADER.pack(kind, size, time.process_time(), t))
        for p in payload:
            answers.write(p)
        answers.flush()

    try:
        renderer = make(argv)
        answer(b"R", json.dumps(asdict(renderer.info())).encode())
        while True:
            request = requests.read(_REQUEST.size)
            if len(request) < _REQUEST.size:
                return 0  # the parent closed the camera, or died: nothing more to make
            (index,) = _REQUEST.unpack(request)
            got = renderer.frame(index)
            if got is None:
                answer(b"X")
                continue
            t, main, luma = got
            answer(b"F", np.ascontiguousarray(main).data.cast("B"),
                   np.ascontiguousarray(luma).data.cast("B"), t=t)
    except BrokenPipeError:
        return 0  # the parent went away mid-answer
    except CameraError as exc:  # a known failure (a file that cannot be read): its message
        with contextlib.suppress(OSError):
            answer(b"E", " ".join(str(exc).split()).encode())
        return 1
    except Exception:  # handed to the parent, which raises it as a CameraError
        traceback.print_exc()  # to the daemon's log (stderr, inherited)
        with contextlib.suppress(OSError):
            answer(b"E", traceback.format_exc().encode())
        return 1


def serve_main(make: Callable[[list[str]], Renderer], argv: list[str]) -> int:
    """The child's entry point: serve the frames of ``make(argv)`` on stdin/stdout."""
    # The daemon decides when frames stop; its signals end it, then our stdin's EOF ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers go to a private copy of stdout; fd 1 becomes stderr, so a stray print cannot
    # corrupt the frames.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        with os.fdopen(0, "rb", buffering=0) as requests:
            return _serve(make, argv, requests, answers)
    finally:
        with contextlib.suppress(OSError):  # a parent gone mid-answer leaves it unflushed
            answers.close()
