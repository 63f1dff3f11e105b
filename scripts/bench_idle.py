"""Idle CPU of the real daemon loop on the Pi camera path with hardware encoding.

Runs ``agent.app.run`` in this process with ``--source picamera2`` against the fake picamera2
(tests/fakes: frames at ``--fps``, a static porch, its H264Encoder is libx264 on a thread of its
own) and measures, between events, process CPU time / wall time over ``--seconds`` after a
``--warmup``. On a Pi the ISP and the encoder are hardware, so the fake's own threads (frame clock
and libx264) are measured separately and subtracted: what remains is the daemon.

Usage: ``python scripts/bench_idle.py [--seconds 30] [--warmup 5] [--fps 15] [--size 1280x720]
[--json]`` (or ``scripts/bench idle``). Target: daemon <= 5 % of one core at 15 fps.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.app import RunOptions, run  # noqa: E402
from agent.config import parse_config  # noqa: E402
from tests.fakes import install  # noqa: E402

TARGET_PCT = 5.0


def measure(seconds: float, warmup: float, fps: float, width: int, height: int) -> dict[str, Any]:
    monkeypatch = pytest.MonkeyPatch()
    fake = install(monkeypatch)
    hw = next(fake)
    cfg = parse_config(f'[camera]\nsource = "picamera2"\nwidth = {width}\nheight = {height}\n'
                       f"fps = {fps}\n[gpio]\npin_factory = \"mock\"\n")
    marks: dict[str, tuple[float, float, float, int]] = {}

    def sample() -> tuple[float, float, float, int]:
        return time.monotonic(), time.process_time(), hw.cpu_s(), hw.frames_delivered

    def stopwatch() -> None:
        time.sleep(warmup)
        marks["start"] = sample()
        time.sleep(seconds)
        marks["end"] = sample()
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own clean stop

    try:
        with tempfile.TemporaryDirectory(prefix="doorward-bench-idle-") as data:
            threading.Thread(target=stopwatch, daemon=True).start()
            code = run(cfg, RunOptions(data_dir=data))
    finally:
        for _ in fake:  # stops the fake cameras, restores sys.modules
            pass
        monkeypatch.undo()
    (w0, c0, f0, n0), (w1, c1, f1, n1) = marks["start"], marks["end"]
    wall = w1 - w0
    process_pct = 100 * (c1 - c0) / wall
    fake_pct = 100 * (f1 - f0) / wall
    return {"exit_code": code, "seconds": round(wall, 1), "fps": fps, "size": f"{width}x{height}",
            "frames": n1 - n0, "process_cpu_pct": round(process_pct, 2),
            "fake_camera_and_encoder_cpu_pct": round(fake_pct, 2),
            "daemon_cpu_pct": round(process_pct - fake_pct, 2), "target_pct": TARGET_PCT}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.seconds, args.warmup, args.fps, width, height)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"idle daemon CPU over {result['seconds']} s at {args.fps:g} fps {args.size} "
              f"({result['frames']} frames): {result['daemon_cpu_pct']:.2f} % of one core "
              f"(process {result['process_cpu_pct']:.2f} %, minus the fake camera and encoder "
              f"{result['fake_camera_and_encoder_cpu_pct']:.2f} %); target <= {TARGET_PCT:g} %")
    return 0 if result["daemon_cpu_pct"] <= TARGET_PCT else 1


if __name__ == "__main__":
    sys.exit(main())
