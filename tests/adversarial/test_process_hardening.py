"""Finding 9c/9d: outside systemd, data files were created 0644 (group and other could read the clip
index, sealed clips, status), and nothing stopped a core dump from holding frames.

Run as people run it (the real `doorward run`, from a shell whose umask is the usual 022): every
file and directory it creates in a fresh data dir is private to its user, and the running daemon
cannot dump core even when the core size limit allows it (prctl PR_SET_DUMPABLE 0). The core
check has a control: the same limit and signal on a plain Python process does leave a core file,
so "no core" means the daemon refused, not that this machine never writes one. The systemd unit
also says LimitCORE=0 and keeps the service out of swap.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DOORWARD, SMALL_CONFIG, wait_for

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "doorward.service"

pytestmark = pytest.mark.slow


def test_files_created_by_run_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run = subprocess.run([DOORWARD, "run", "--source", "sim:visit", "--data-dir", str(data),
                          "--exit-at-eof"], capture_output=True, text=True, timeout=300,
                         umask=0o022, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    created = [data, *data.rglob("*")]
    assert any(p.name.endswith(".mp4.age") for p in created), run.stderr[-2000:]
    readable = [f"{p.relative_to(tmp_path)} {p.stat().st_mode & 0o777:o}" for p in created
                if p.stat().st_mode & 0o077]
    assert readable == [], f"group/other can read: {readable}"


def _limit_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _core_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("core"))


def test_a_running_daemon_cannot_dump_core(tmp_path: Path) -> None:
    if Path("/proc/sys/kernel/core_pattern").read_text().startswith("|"):
        pytest.skip("core dumps go to a helper on this machine (core_pattern is a pipe)")
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    control = subprocess.run([sys.executable, "-c", "import os, signal; "
                              "os.kill(os.getpid(), signal.SIGABRT)"],
                             cwd=control_dir, preexec_fn=_limit_core, check=False, timeout=60)
    assert control.returncode == -signal.SIGABRT
    assert _core_files(control_dir), "control: this machine wrote no core file for SIGABRT"

    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_CONFIG)
    proc = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch",
                             "--realtime", "--data-dir", str(data)], cwd=work,
                            preexec_fn=_limit_core, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        def frames() -> int:
            try:
                return int(json.loads((data / "status.json").read_text()).get("frames", 0))
            except (OSError, ValueError):
                return -1 if proc.poll() is not None else 0

        wait_for(lambda: frames() != 0, timeout=60, what="the daemon to process frames")
        assert proc.poll() is None
        proc.send_signal(signal.SIGABRT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGABRT
    assert _core_files(work) == [], "the daemon dumped core: its memory (frames) is on disk"


HARDEN = """
import ctypes, os
from agent.runtime.hardening import harden_process
harden_process()
libc = ctypes.CDLL(None, use_errno=True)
print(libc.prctl(3, 0, 0, 0, 0), oct(os.umask(0)))
"""


def test_harden_process_sets_non_dumpable_and_a_private_umask() -> None:
    out = subprocess.run([sys.executable, "-c", HARDEN], capture_output=True, text=True,
                         check=True, timeout=60, umask=0o022, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["0", "0o77"]  # PR_GET_DUMPABLE = 0, umask 0077


def test_the_unit_forbids_core_dumps_and_swap() -> None:
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    assert "LimitCORE=0" in lines
    assert "MemorySwapMax=0" in lines
