"""Soak run (``scripts/bench soak --minutes 60``): the daemon for an hour with visitors, sampled.

Runs ``doorward run --source sim:porch --realtime`` (a porch that never ends: a visitor every few
minutes, passers-by and cats; 1280x720 at 15 fps) against a real Mosquitto on loopback (events,
status and discovery go through the uplink; without ``mosquitto`` on PATH, or with
``--no-broker``, the daemon runs without one). The store is capped low (``[store] max_bytes``
30 MB, ``retention_days`` 0.01 = 14.4 min; ``[events] max_clip_s`` 30) so retention evicts clips
and forgets events well inside the hour: whatever the daemon keeps must then stop growing.

Every ``--interval-s`` (60 s) it prints one JSON line: the daemon's RSS (and its peak so far), open
file descriptors, threads, the SQLite files' size (``*.sqlite`` with their ``-wal``/``-shm``, in
total and per database), the whole data directory's size, and from status.json the store's own
count of its clips' bytes and the daemon's frame, drop and event counters.

Pass/fail (exit 1 on growth): the samples after ``--warmup-min`` (default a third of the run, at
least the retention window) are split into halves; the second half's maximum may exceed the
first half's by at most: RSS 6 MB (the daemon's, and apart the simulator's child process,
``sim_rss_mb``), file descriptors 2, threads 1, databases 256 KiB. The store must stay within
max_bytes plus one clip (a clip just sealed, before eviction), the data directory within that
plus 8 MB of databases and keys. The daemon runs with PYTHONOPTIMIZE=2, as its unit does, on
bytecode compiled first as `scripts/install-pi` compiles it (scripts/bench_pipeline.py).
Dropped frames are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_pipeline import (  # noqa: E402
    DOORWARD,
    compile_as_installed,
    machine,
    packages,
)

MAX_BYTES = 30_000_000
RETENTION_DAYS = 0.01
MAX_CLIP_S = 30  # events are split into clips of at most this: a clip in progress stays small
# What the data directory may hold beyond the store's max_bytes: one clip in progress (and its
# snapshot) at the bit-rate cap plus x264's 1 s buffer, and 8 MB of databases (SQLite's WAL grows
# to its 1000-page checkpoint size, about 4 MB, and is then reused) and keys.
DB_ALLOWANCE_BYTES = 8_000_000


def clip_allowance_bytes(max_clip_s: float = MAX_CLIP_S) -> int:
    from agent.config import RecordingConfig

    return int((max_clip_s + 1) * RecordingConfig().bitrate_kbps * 1000 / 8) + 500_000
LIMITS = {"rss_mb": 6.0, "sim_rss_mb": 6.0, "fds": 2, "threads": 1, "db_bytes": 256 * 1024}


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return 0


def _tree_bytes(root: Path, suffixes: tuple[str, ...] | None = None) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file() and (suffixes is None or path.name.endswith(suffixes)):
                total += path.stat().st_size
        except OSError:  # deleted while we walked
            continue
    return total


_DB_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".db", ".db-wal", ".db-shm")


def _wal_kb(db: Path) -> float:
    """Size of a database's -wal and -shm files, in KiB (0 when absent)."""
    total = 0
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += db.with_name(db.name + suffix).stat().st_size
    return total / 1024


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the simulator's renderer for a ``sim:`` source)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def sample(pid: int, data: Path, started: float) -> dict[str, Any]:
    """One sample of the live daemon ``pid``, its simulator child and its data directory."""
    try:
        st = json.loads((data / "status.json").read_text())
    except (OSError, ValueError):
        st = {}
    return {
        "t_min": round((time.monotonic() - started) / 60, 2),
        "rss_mb": round(_status_kb(pid, "VmRSS") / 1024, 1),
        "peak_rss_mb": round(_status_kb(pid, "VmHWM") / 1024, 1),
        # the simulator renders in a child (none of it exists on a Pi): measured apart
        "sim_rss_mb": round(sum(_status_kb(k, "VmRSS") for k in _children(pid)) / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": _status_kb(pid, "Threads"),
        "db_bytes": _tree_bytes(data, _DB_SUFFIXES),
        "dbs_kb": {p.name.split(".")[0]: round(_tree_bytes(data, (p.name,)) / 1024
                                               + _wal_kb(p), 1)
                   for p in sorted(data.glob("*.sqlite"))},
        "data_bytes": _tree_bytes(data),
        "store_bytes": st.get("store_bytes"),
        "frames": st.get("frames"), "dropped": st.get("dropped_frames"),
        "events": st.get("events"),
    }


def judge(samples: list[dict[str, Any]], warmup_min: float,
          clip_allowance: int | None = None) -> dict[str, Any]:
    """Growth between the halves of the post-warm-up samples, and the data directory within the
    store's cap plus a clip in progress (``clip_allowance`` bytes) and the databases; ``pass``
    False on any excess."""
    allowance = clip_allowance_bytes() if clip_allowance is None else clip_allowance
    steady = [s for s in samples if s["t_min"] >= warmup_min]
    if len(steady) < 4:
        return {"pass": False, "why": f"only {len(steady)} samples after the warm-up"}
    half = len(steady) // 2
    first, second = steady[:half], steady[half:]
    growth = {k: round(max(s[k] for s in second) - max(s[k] for s in first), 1) for k in LIMITS}
    over = {k: v for k, v in growth.items() if v > LIMITS[k]}
    data_max = max(s["data_bytes"] for s in samples)
    data_limit = MAX_BYTES + allowance + DB_ALLOWANCE_BYTES
    if data_max > data_limit:
        over["data_bytes"] = data_max
    store_max = max((s.get("store_bytes") or 0) for s in samples)
    if store_max > MAX_BYTES + allowance:  # a clip just sealed, before the store evicts
        over["store_bytes"] = store_max
    return {"growth_second_vs_first_half": growth, "limits": LIMITS, "over": over,
            "data_bytes_max": data_max, "data_bytes_limit": data_limit,
            "store_bytes_max": store_max, "pass": not over}


def soak(minutes: float, interval_s: float, warmup_min: float, broker: bool,
         tmp: Path) -> dict[str, Any]:
    data = tmp / "data"
    cfg = tmp / "soak.toml"
    cfg.write_text(f"[store]\nmax_bytes = {MAX_BYTES}\nretention_days = {RETENTION_DAYS}\n"
                   f"[events]\nmax_clip_s = {MAX_CLIP_S}\n")
    cmd = [DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch", "--realtime",
           "--data-dir", str(data)]
    mosq = None
    if broker and shutil.which("mosquitto"):
        from tests.servers import Mosquitto

        mosq = Mosquitto(tmp / "mosquitto")
        mosq.start()
        cmd += ["--broker", mosq.url]
    log = (tmp / "daemon.log").open("w")
    # as systemd/doorward.service runs it (docstrings and asserts stripped)
    proc = subprocess.Popen(cmd, stderr=log, stdout=log, env={**os.environ, "PYTHONOPTIMIZE": "2"})
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        end = started + minutes * 60
        while time.monotonic() < end:
            time.sleep(min(interval_s, max(0.0, end - time.monotonic())))
            if proc.poll() is not None:
                raise SystemExit(f"daemon exited ({proc.returncode}): see {tmp / 'daemon.log'}")
            s = sample(proc.pid, data, started)
            samples.append(s)
            print(json.dumps(s), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if mosq is not None:
            mosq.stop()
    res = judge(samples, warmup_min)
    res["broker"] = mosq is not None
    res["exit_code"] = proc.returncode
    res["events"] = samples[-1]["events"] if samples else None
    res["dropped"] = samples[-1]["dropped"] if samples else None
    res["peak_rss_mb"] = max((s["peak_rss_mb"] for s in samples), default=None)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the run")
    ap.add_argument("--interval-s", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--warmup-min", type=float, default=None,
                    help="minutes left out of the growth check (default: a third of the run, "
                         "at least the 14.4 min retention window when the run is long enough)")
    ap.add_argument("--no-broker", action="store_true", help="run without Mosquitto")
    ap.add_argument("--pi-packages", action="store_true",
                    help="with the Pi's package versions (.venv-pi, which scripts/bench "
                         "picks)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the data dir and log here instead of a temporary directory")
    args = ap.parse_args()
    # a SIGTERM (timeout, kill) ends the run through soak()'s clean-up: daemon and broker stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warmup = args.warmup_min
    if warmup is None:
        warmup = max(args.minutes / 3, min(RETENTION_DAYS * 1440, args.minutes / 2))
    print(json.dumps({"bench": "soak", "machine": machine(), "minutes": args.minutes,
                      "warmup_min": round(warmup, 1), "packages": packages(),
                      **compile_as_installed(2)}), flush=True)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        res = soak(args.minutes, args.interval_s, warmup, not args.no_broker, args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            res = soak(args.minutes, args.interval_s, warmup, not args.no_broker, Path(tmp))
    print(json.dumps({"bench": "soak", **res}, indent=2))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
