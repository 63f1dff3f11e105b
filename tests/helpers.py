"""Shared test helpers: run the real ``doorward`` CLI, wait on conditions, probe media files."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.owner.keyring import OwnerKeyring, PairedDevice
from uplink.mqtt_types import InboundMessage

DOORWARD = str(Path(sys.executable).parent / "doorward")

# A small, fast configuration for most end-to-end runs (the 720p default is exercised separately).
SMALL_CONFIG = """
[camera]
width = 640
height = 360
fps = 15.0
"""


def doorward(*args: str, timeout: float = 300, check: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``doorward`` console script and return its result."""
    proc = subprocess.run([DOORWARD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"doorward {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def doorward_json(*args: str) -> Any:
    return json.loads(doorward(*args).stdout)


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def next_on(inbox: queue.Queue[InboundMessage], topic: str, timeout: float = 15.0,
            ) -> InboundMessage:
    """The next message on ``topic`` in ``inbox`` (others before it are taken and dropped);
    fail naming the topic after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            m = inbox.get(timeout=left)
        except queue.Empty:
            break
        if m.topic == topic:
            return m
    raise AssertionError(f"nothing on {topic} within {timeout} s")


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def assert_child_ends_with_parent(code: str, what: str) -> None:
    """Run ``code`` in a parent Python process that starts a child and prints the child's pid;
    SIGKILL the parent (no cleanup runs) and wait for the child to exit on its own."""
    root = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not process_gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: process_gone(child), timeout=20, what=what)
    finally:
        parent.kill()
        parent.wait()


def ffprobe(path: Path) -> dict[str, Any]:
    """codec, decoded frame count and duration of a media file, read by the real ffprobe."""
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe is missing: install the Debian package ffmpeg (scripts/test does)"
    out = subprocess.run(
        [exe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,nb_read_frames:format=duration,format_name", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=120)
    doc = json.loads(out.stdout)
    stream = doc["streams"][0]
    return {"codec": stream["codec_name"], "frames": int(stream["nb_read_frames"]),
            "duration": float(doc["format"].get("duration", 0.0))}


def plain_mp4(data: bytes) -> bool:
    """Whether ``data`` holds an MP4 ``ftyp`` box with a usual brand: plaintext video.

    Why not ``b"ftyp" in data``: a few megabytes of ciphertext hold those 4 bytes by chance
    about once in a thousand files (seen in a full run); 8 bytes with the brand do not.
    """
    return re.search(rb"ftyp(isom|iso[2-9]|mp4[12]|avc1|dash|M4V )", data) is not None


def age_decrypt(identity: Path, sealed: Path, out: Path) -> subprocess.CompletedProcess[bytes]:
    """Decrypt with the independent ``age`` CLI (to stdout: age writes no file for empty output)."""
    exe = shutil.which("age")
    assert exe, "the age CLI is missing: install the Debian package age (scripts/test does)"
    with out.open("wb") as fh:
        return subprocess.run([exe, "-d", "-i", str(identity), str(sealed)], stdout=fh,
                              stderr=subprocess.PIPE, check=False, timeout=120)


def spawn_daemon(tmp_path: Path, broker_url: str, *, source: str = "sim:porch"
                 ) -> tuple[subprocess.Popen[str], Path]:
    """`doorward run` in real time with the small test config and a broker; returns the process
    and its data directory (the caller stops it)."""
    data = tmp_path / "device"
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_CONFIG)
    proc = subprocess.Popen(
        [DOORWARD, "run", "--config", str(cfg), "--source", source, "--realtime",
         "--data-dir", str(data), "--broker", broker_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, data


@dataclass(frozen=True)
class Paired:
    """A device's data directory and an owner keyring paired with it (see :func:`pair_for_test`)."""

    data: Path
    owner_dir: Path
    label: dict[str, str]
    ring: OwnerKeyring


def pair_for_test(tmp: Path, broker_url: str, *, owner_dir: Path | None = None) -> Paired:
    """A device (``tmp/device``, made by ``doorward device label``) whose first owner is a new
    keyring (``tmp/owner`` unless ``owner_dir``), written straight into the device's database and
    the keyring's device list: the state a completed pairing leaves, without the setup button and
    the broker round trip (tests/e2e/test_pairing_cli.py tests those). The daemon is not started."""
    data = tmp / "device"
    label = doorward_json("device", "label", "--json", "--data-dir", str(data))
    owner_dir = owner_dir or tmp / "owner"
    ring, _ = OwnerKeyring.init(owner_dir)
    db = DeviceDB(data / "device.sqlite")
    try:
        ConsentStore(db).add_owner(ring.public_raw, ring.recipient, "owner", time.time())
    finally:
        db.close()
    ring.add_device(PairedDevice(label["device_id"], label["public_key"], label["fingerprint"],
                                 broker_url, time.time()))
    return Paired(data, owner_dir, label, ring)
