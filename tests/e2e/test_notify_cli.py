"""End to end: ``doorward run`` under a fake service manager. The test binds the notify socket,
passes it in $NOTIFY_SOCKET with a watchdog in $WATCHDOG_USEC, and reads what the daemon says."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DOORWARD, SMALL_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture()
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    tmp = tempfile.mkdtemp(prefix="dw-e2e-")  # short: AF_UNIX paths are limited to 107 bytes
    path = f"{tmp}/notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield path, sock
    sock.close()
    shutil.rmtree(tmp)


class Received:
    """Every assignment the daemon sent, with the time it arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines: list[tuple[float, str]] = []

    def until(self, wanted: str, *, timeout: float) -> float:
        """Read datagrams until one carries the assignment ``wanted`` (prefix match)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {wanted!r} within {timeout} s; got {self.lines}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            now = time.monotonic()
            lines = data.split("\n")
            self.lines.extend((now, line) for line in lines)
            if any(line.startswith(wanted) for line in lines):
                return now

    def count(self, line: str) -> int:
        return sum(1 for _, got in self.lines if got == line)


def test_run_notifies_ready_status_watchdog_and_stopping(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    config = tmp_path / "small.toml"
    config.write_text(SMALL_CONFIG)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}  # ping every 0.5 s
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(config), "--source", "sim:visit", "--data-dir",
         str(tmp_path / "data"), "--realtime"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = Received(sock)
    try:
        got.until("READY=1", timeout=60)
        assert "STATUS=idle" in [line for _, line in got.lines[-3:]]  # with READY=1, at once
        assert got.count("READY=1") == 1
        # The visitor of the 'visit' scene arrives at 3.4 s of scene time.
        got.until("STATUS=recording event 1", timeout=60)
        pings_from = time.monotonic()
        got.until("WATCHDOG=1", timeout=5)
        got.until("WATCHDOG=1", timeout=5)
        got.until("WATCHDOG=1", timeout=5)
        pings = [t for t, line in got.lines if line == "WATCHDOG=1" and t >= pings_from]
        # At most one ping per WATCHDOG_USEC / 4 = 0.5 s (a little slack for delivery jitter).
        assert all(b - a >= 0.4 for a, b in itertools.pairwise(pings)), pings
        proc.send_signal(signal.SIGTERM)
        got.until("STOPPING=1", timeout=30)
        assert got.lines[-1][1] == "STATUS=stopping (SIGTERM)"
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert got.count("READY=1") == 1 and got.count("STOPPING=1") == 1


def test_watchdog_meant_for_another_process_is_ignored(
        tmp_path: Path, notify_socket: tuple[str, socket.socket]) -> None:
    """WATCHDOG_PID names someone else (an inherited environment): READY=1, but no pings."""
    path, sock = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000",
           "WATCHDOG_PID": "1"}
    config = tmp_path / "small.toml"
    config.write_text(SMALL_CONFIG)
    proc = subprocess.run(
        [DOORWARD, "run", "--config", str(config), "--source", "sim:cat", "--data-dir",
         str(tmp_path / "data"), "--exit-at-eof"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    got = Received(sock)
    got.until("STOPPING=1", timeout=5)  # everything is already queued on the socket
    assert got.count("READY=1") == 1
    assert got.count("WATCHDOG=1") == 0
