"""Start-up time of ``doorward run`` to systemd's READY=1, with a simulated camera.

Binds a notify socket as systemd would, spawns ``doorward run --source sim:porch`` with
``NOTIFY_SOCKET`` set, and times spawn -> READY=1 (the daemon sends it once the first frames went
through the pipeline: config, store recovery, device state, encoder, GPIO, control socket, first
frames). Then SIGTERM, and again. The first run creates the device identity and databases and is
reported apart; the rest reuse the data directory, like a service restart. Target: median <= 2 s.

    .venv/bin/python scripts/bench_startup.py [--runs 5] [--importtime]

``--importtime`` also prints the slowest imports of one start (``python -X importtime``), which
is where the time goes when the target is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOORWARD = str(Path(sys.executable).parent / "doorward")
TARGET_S = 2.0


def start_once(data_dir: Path, sock_path: str, sock: socket.socket, *, source: str,
               timeout_s: float = 60.0) -> float:
    """Seconds from spawn to READY=1; the daemon is stopped (SIGTERM) before returning."""
    env = {**os.environ, "NOTIFY_SOCKET": sock_path}
    started = time.perf_counter()
    proc = subprocess.Popen([DOORWARD, "run", "--source", source, "--data-dir", str(data_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
                raise SystemExit(f"no READY=1 within {timeout_s} s (exit {proc.poll()}): {err}")
            sock.settimeout(min(left, 0.5))
            try:
                data = sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in data.split("\n"):
                elapsed = time.perf_counter() - started
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise SystemExit(f"doorward run exited {proc.returncode} after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _drain(sock)
    return elapsed


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def importtime(data_dir: Path, source: str, top: int) -> None:
    """The slowest imports (cumulative) of one `doorward run` start, stopped at READY=1."""
    with tempfile.TemporaryDirectory(prefix="dw-bench-") as tmp:
        sock_path = f"{tmp}/notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        env = {**os.environ, "NOTIFY_SOCKET": sock_path}
        proc = subprocess.Popen([sys.executable, "-X", "importtime", DOORWARD, "run", "--source",
                                 source, "--data-dir", str(data_dir)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        sock.settimeout(60)
        while "READY=1" not in sock.recv(4096).decode().split("\n"):
            pass
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        sock.close()
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    total = sum(cum for cum, depth, _ in rows if depth == 1)
    print(f"\nimports: {total / 1e6:.2f} s in total (top-level cumulative); slowest top-level:")
    for cum, _, name in sorted((r for r in rows if r[1] == 1), reverse=True)[:top]:
        print(f"  {cum / 1e6:6.3f} s  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed restarts (default 5)")
    ap.add_argument("--source", default="sim:porch")
    ap.add_argument("--importtime", action="store_true", help="profile the imports of one start")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        sock_path = f"{tmp}/notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        first = start_once(data_dir, sock_path, sock, source=args.source)
        times = [start_once(data_dir, sock_path, sock, source=args.source)
                 for _ in range(args.runs)]
        sock.close()
        median = statistics.median(times)
        print(f"doorward run --source {args.source}: spawn -> READY=1")
        print(f"  first start (new identity and databases): {first:.2f} s")
        print(f"  restarts (n={len(times)}): median {median:.2f} s, p95 {p95(times):.2f} s, "
              f"max {max(times):.2f} s  [{', '.join(f'{t:.2f}' for t in times)}]")
        print(f"  target: median <= {TARGET_S:.1f} s: {'met' if median <= TARGET_S else 'MISSED'}")
        if args.importtime:
            importtime(data_dir, args.source, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
