"""The systemd unit checked by systemd's own tools, and the notify protocol over real AF_UNIX
datagram sockets (a path and an abstract name), as systemd's manager would receive it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime.sdnotify import ServiceNotifier, SocketNotifier

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "doorward.service"
EXEC = "/opt/doorward/venv/bin/doorward"
MAX_EXPOSURE = 2.5  # the requirement

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing: install the Debian package systemd (252) to check the unit")


def unit_copy(dest: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at an executable that exists (verify checks it)."""
    exe = dest / "doorward"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    source = UNIT.read_text() if text is None else text
    assert EXEC in source
    path = dest / "doorward.service"
    path.write_text(source.replace(EXEC, str(exe)))
    return path


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


@needs_analyze
def test_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    res = analyze("verify", str(unit_copy(tmp_path)), cwd=tmp_path)
    # verify exits 0 even for unknown keys and unparsable values: any output is a failure.
    assert res.stderr == "" and res.stdout == "" and res.returncode == 0, res.stderr


@needs_analyze
def test_verify_does_report_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo in a key or a value is reported on stderr."""
    text = UNIT.read_text().replace("ProtectClock=yes", "ProtectClok=yes").replace(
        "WatchdogSec=30s", "WatchdogSec=30 parsecs")
    res = analyze("verify", str(unit_copy(tmp_path, text)), cwd=tmp_path)
    assert "Unknown key 'ProtectClok'" in res.stderr
    assert "Failed to parse sec value" in res.stderr  # the WatchdogSec line


@needs_analyze
def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    unit = unit_copy(tmp_path)
    # --threshold is in tenths of the printed level: 25 means "fail above 2.5".
    res = analyze("security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", str(unit),
                  cwd=tmp_path)
    found = re.search(r"Overall exposure level for doorward\.service: (\d+\.\d)", res.stdout)
    assert found, res.stdout + res.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, res.stdout
    assert res.returncode == 0, res.stdout + res.stderr


def test_unit_keeps_the_camera_and_gpio_reachable() -> None:
    """The hardening must not hide the devices the doorbell exists for."""
    settings = [line.strip() for line in UNIT.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert not any(s.startswith("PrivateDevices=") for s in settings)  # would hide /dev/video*
    assert not any(s.startswith("PrivateNetwork=") or s.startswith("IPAddressDeny=")
                   for s in settings)  # MQTT and S3 are at configured addresses
    for device in ("video4linux", "media", "dma_heap", "gpiochip"):
        assert f"DeviceAllow=char-{device} rw" in settings
    for setting in ("Type=notify", "NotifyAccess=main", "SupplementaryGroups=video gpio",
                    "Environment=LG_WD=%t/doorward", "Restart=on-failure", "User=doorward",
                    "Environment=PYTHONOPTIMIZE=2"):
        assert setting in settings
    assert any(s.startswith("WatchdogSec=") for s in settings)
    families = next(s for s in settings if s.startswith("RestrictAddressFamilies="))
    assert set(families.split("=", 1)[1].split()) == {"AF_UNIX", "AF_INET", "AF_INET6",
                                                      "AF_NETLINK"}


# ---- the notify protocol over a real socket -------------------------------------------------


class Listener:
    """A bound AF_UNIX datagram socket, like the one systemd passes in $NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)

    def next(self, timeout: float = 5.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        """Datagrams already delivered (a datagram is queued before sendto returns)."""
        self.sock.setblocking(False)
        out: list[str] = []
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    # A short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can be longer.
    tmp = tempfile.mkdtemp(prefix="dw-notify-")
    name = (f"{tmp}/notify" if request.param == "path"
            else f"@doorward-test-{os.getpid()}-{os.path.basename(tmp)}")
    lis = Listener(name)
    yield lis
    lis.sock.close()
    shutil.rmtree(tmp)


def test_notify_protocol_over_a_real_socket(listener: Listener) -> None:
    notifier = SocketNotifier.from_env({"NOTIFY_SOCKET": listener.env_value})
    state = ["idle"]
    service = ServiceNotifier(notifier, describe=lambda: state[0], watchdog_s=2.0,
                              ready_after_frames=3)
    service.frame(0.0)
    assert listener.next() == "WATCHDOG=1"  # frames flow: pings start with the first one
    service.frame(0.1)
    assert listener.pending() == []  # not ready yet, nothing due
    service.frame(0.2)
    assert listener.next() == "READY=1\nSTATUS=idle"
    state[0] = "recording event 1"
    t = 0.2
    pings = 0
    while t < 4.0:  # 4 s of frames at 10 fps: a ping every 0.5 s at most
        t += 0.1
        service.frame(t)
        for msg in listener.pending():
            pings += msg.count("WATCHDOG=1")
            if "STATUS=" in msg:
                assert "STATUS=recording event 1" in msg.split("\n")
    assert 7 <= pings <= 8
    # Frames stop: nothing arrives, however long we listen (there is no timer thread).
    with pytest.raises(TimeoutError):
        listener.next(timeout=0.6)
    service.stopping("SIGTERM")
    assert listener.next() == "STOPPING=1\nSTATUS=stopping (SIGTERM)"
    service.close()


def test_a_vanished_socket_does_not_break_the_loop(listener: Listener) -> None:
    notifier = SocketNotifier.from_env({"NOTIFY_SOCKET": listener.env_value})
    service = ServiceNotifier(notifier, describe=lambda: "idle", watchdog_s=1.0,
                              ready_after_frames=1)
    service.frame(0.0)
    assert listener.next().startswith("READY=1")
    listener.sock.close()  # systemd went away (or the path was removed)
    for i in range(1, 20):
        service.frame(i * 0.5)  # must not raise
    service.stopping("eof")
    service.close()
