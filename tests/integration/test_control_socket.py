"""The control socket over a real Unix socket: permissions, validation, lifecycle, peer checks."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import DoorwardError
from agent.paths import DataDir
from agent.runtime.control_socket import (
    MAX_CONNECTIONS,
    MAX_MESSAGE_BYTES,
    ControlServer,
    peer_allowed,
    send_command,
)


class Recorder:
    """on_command for tests: records (the daemon would enqueue) and acknowledges."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, msg: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.got.append(msg)
        return {"ok": True, "queued": msg["button"]}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return DataDir(tmp_path).control_socket


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(path: Path, recorder: Recorder) -> Iterator[ControlServer]:
    with ControlServer(path, recorder, io_timeout_s=0.5) as s:
        yield s


def raw_request(path: Path, data: bytes, *, shut_write: bool = False) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(str(path))
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, f"server closed without a reply; got {buf!r}"
            buf += chunk
    reply = json.loads(buf)
    assert isinstance(reply, dict)
    return reply


def test_socket_is_0600_and_ours(server: ControlServer, path: Path) -> None:
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


def test_round_trip(server: ControlServer, path: Path, recorder: Recorder) -> None:
    reply = send_command(path, {"cmd": "press", "button": "setup", "hold_s": 3.5})
    assert reply == {"ok": True, "queued": "setup"}
    reply = send_command(path, {"cmd": "press", "button": "ring"})
    assert reply["ok"] is True
    assert recorder.got == [{"cmd": "press", "button": "setup", "hold_s": 3.5},
                            {"cmd": "press", "button": "ring", "hold_s": 0.2}]


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "JSON object"),
    (b'{"cmd": "press", "button": "door"}\n', '"button" must be'),
    (b'{"cmd": "reset", "button": "setup"}\n', '"cmd" must be "press"'),
    (b'{"cmd": "press", "button": "setup", "hold_s": 31}\n', '"hold_s" must be'),
    (b'{"cmd": "press", "button": "setup", "hold_s": -1}\n', '"hold_s" must be'),
    (b'{"cmd": "press", "button": "setup", "hold_s": true}\n', '"hold_s" must be'),
    (b'{"cmd": "press", "button": "setup", "hold_s": "3"}\n', '"hold_s" must be'),
    (b'{"cmd": "press", "button": "setup", "hold_s": NaN}\n', "NaN"),
    (b'{"cmd": "press", "button": "ring", "as_root": 1}\n', "unknown field"),
    (b'{"cmd": "press", "button": "ring", "button": "setup"}\n', "duplicate key"),
    (b'{"cmd": "press", "button": "ring"}\n{"cmd": "press", "button": "ring"}\n', "one JSON line"),
    (b'\xff\xfe\n', "UTF-8"),
])
def test_malformed_requests_are_refused(server: ControlServer, path: Path, recorder: Recorder,
                                        data: bytes, reason: str) -> None:
    reply = raw_request(path, data)
    assert reply["ok"] is False
    assert reason in reply["error"]
    assert recorder.got == []


def test_request_without_newline_is_refused(server: ControlServer, path: Path,
                                            recorder: Recorder) -> None:
    reply = raw_request(path, b'{"cmd": "press", "button": "ring"}', shut_write=True)
    assert "newline" in reply["error"]
    assert recorder.got == []


def test_silent_client_times_out_and_server_goes_on(server: ControlServer, path: Path,
                                                    recorder: Recorder) -> None:
    reply = raw_request(path, b'{"cmd": "pre')  # then says nothing more
    assert reply == {"ok": False, "error": "no complete request in time"}
    assert send_command(path, {"cmd": "press", "button": "ring"})["ok"] is True


@pytest.mark.parametrize("data", [
    b"x" * 2000,
    b'{"cmd": "press", "button": "ring"' + b" " * MAX_MESSAGE_BYTES + b"}\n",
])
def test_oversize_input_is_refused(server: ControlServer, path: Path, recorder: Recorder,
                                   data: bytes) -> None:
    reply = raw_request(path, data)
    assert reply["ok"] is False
    assert f"longer than {MAX_MESSAGE_BYTES} bytes" in reply["error"]
    assert recorder.got == []


def test_stale_socket_is_replaced(path: Path, recorder: Recorder) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a crashed daemon leaves
    os.chmod(path, 0o600)
    with pytest.raises(DoorwardError, match="left over from a daemon that stopped"):
        send_command(path, {"cmd": "press", "button": "ring"})
    with ControlServer(path, recorder):
        assert send_command(path, {"cmd": "press", "button": "ring"})["ok"] is True
    assert not path.exists()


def test_second_server_is_refused(server: ControlServer, path: Path, recorder: Recorder) -> None:
    with pytest.raises(DoorwardError, match="another doorward is running with this data dir"):
        ControlServer(path, recorder).start()
    # The first one is untouched and still answers.
    assert send_command(path, {"cmd": "press", "button": "setup"})["ok"] is True


def test_path_that_is_not_a_socket_is_refused(path: Path, recorder: Recorder) -> None:
    path.write_text("precious")
    with pytest.raises(DoorwardError, match="exists and is not a socket"):
        ControlServer(path, recorder).start()
    assert path.read_text() == "precious"
    with pytest.raises(DoorwardError, match="not a socket: refusing"):
        send_command(path, {"cmd": "press", "button": "ring"})


def test_client_refuses_socket_with_wrong_mode(server: ControlServer, path: Path,
                                               recorder: Recorder) -> None:
    os.chmod(path, 0o660)
    with pytest.raises(DoorwardError, match="mode 660, not 600: refusing"):
        send_command(path, {"cmd": "press", "button": "ring"})
    assert recorder.got == []


def test_client_without_daemon_names_the_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DoorwardError,
                       match=f"no running doorward daemon for data dir {tmp_path} "
                             r"\(start `doorward run`\)"):
        send_command(DataDir(tmp_path).control_socket, {"cmd": "press", "button": "ring"})


def test_close_removes_socket_and_is_idempotent(path: Path, recorder: Recorder) -> None:
    s = ControlServer(path, recorder).start()
    s.close()
    assert not path.exists()
    s.close()


def test_failing_handler_gets_an_error_reply_and_server_survives(path: Path) -> None:
    calls = []

    def handler(msg: dict[str, Any]) -> dict[str, Any]:
        calls.append(msg)
        if len(calls) == 1:
            raise RuntimeError("queue full")
        return {"ok": True}

    with ControlServer(path, handler):
        reply = send_command(path, {"cmd": "press", "button": "ring"})
        assert reply == {"ok": False, "error": "the daemon could not take the command: "
                                               "RuntimeError('queue full')"}
        assert send_command(path, {"cmd": "press", "button": "ring"}) == {"ok": True}
    assert len(calls) == 2


def test_peer_rule() -> None:
    assert peer_allowed(1000, 1000)
    assert peer_allowed(0, 1000)
    assert not peer_allowed(1001, 1000)


CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b'{"cmd": "press", "button": "setup", "hold_s": 10.5}\\n')
print(s.recv(4096).decode())
"""


def test_other_uid_is_refused_by_peer_credentials(recorder: Recorder) -> None:
    """Even if the file mode were opened up, SO_PEERCRED keeps other users out."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root (to run a client as another uid) and /usr/bin/python3")
    # pytest's tmp_path is 0700 under root's tree: the other user needs a directory it can reach.
    with tempfile.TemporaryDirectory(prefix="doorward-peer-") as d:
        os.chmod(d, 0o755)
        path = DataDir(Path(d)).control_socket
        with ControlServer(path, recorder):
            os.chmod(path, 0o666)
            out = subprocess.run(["/usr/bin/python3", "-I", "-c", CLIENT, str(path)],
                                 user=65534, cwd="/", capture_output=True, text=True,
                                 timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply == {"ok": False, "error": "uid 65534 may not use this control socket"}
    assert recorder.got == []


def _idle_connections(path: Path, n: int) -> list[socket.socket]:
    """``n`` clients that connect and then say nothing (one the server's listen queue has no room
    for fails at once, as Unix sockets do: the attempt is kept, harmlessly)."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # no room in the listen queue: failed
            s.connect(str(path))
        socks.append(s)
    return socks


def test_press_succeeds_while_fifty_idle_connections_are_open(path: Path,
                                                              recorder: Recorder) -> None:
    """Issue 13 (7): fifty silent clients must not lock `doorward press` out (the default
    per-connection timeout, served one at a time, made the 51st wait 100 s)."""
    with ControlServer(path, recorder):
        idle = _idle_connections(path, 50)
        try:
            t0 = time.monotonic()
            reply = send_command(path, {"cmd": "press", "button": "ring"}, timeout=5.0)
            assert reply["ok"] is True
            assert time.monotonic() - t0 < 2.0
            assert recorder.got == [{"cmd": "press", "button": "ring", "hold_s": 0.2}]
        finally:
            for s in idle:
                s.close()


def test_doorward_press_cli_succeeds_while_fifty_idle_connections_are_open(
        tmp_path: Path, recorder: Recorder) -> None:
    from tests.helpers import doorward

    with ControlServer(DataDir(tmp_path).control_socket, recorder) as server:
        idle = _idle_connections(server.path, 50)
        try:
            res = doorward("press", "ring", "--data-dir", str(tmp_path), timeout=60)
            assert "pressed ring" in res.stdout
        finally:
            for s in idle:
                s.close()


def test_idle_connections_are_dropped_after_the_io_timeout(path: Path,
                                                          recorder: Recorder) -> None:
    with ControlServer(path, recorder, io_timeout_s=0.3):
        idle = _idle_connections(path, 5)
        try:
            for s in idle:
                s.setblocking(True)
                s.settimeout(5.0)
                reply = json.loads(s.recv(4096))  # the server times each one out by itself
                assert reply == {"ok": False, "error": "no complete request in time"}
        finally:
            for s in idle:
                s.close()


def test_past_the_connection_bound_the_oldest_idle_one_makes_room(path: Path,
                                                                  recorder: Recorder) -> None:
    with ControlServer(path, recorder):
        idle = []
        for _ in range(MAX_CONNECTIONS + 10):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))  # blocking (no timeout): waits for room in the listen queue
            s.settimeout(5.0)
            idle.append(s)
        try:
            assert send_command(path, {"cmd": "press", "button": "setup"})["ok"] is True
            idle[0].settimeout(5.0)
            assert "oldest is dropped" in json.loads(idle[0].recv(4096))["error"]
        finally:
            for s in idle:
                s.close()
