"""Where `doorward run` spends its CPU per frame, part by part (issue 19: CPU <= 1.2x the encoder).

Usage (from a checkout, with the project's venv; ``--realtime`` paces the simulator at 15 fps)::

    PYTHONPATH=$PWD nice -n 10 python scripts/profile_loop.py --frames 600 [--realtime]

Wires the daemon as ``doorward run --source sim:porch`` (or ``--source``) does (``agent.app.build``,
OpenCV on one thread, the collector frozen after start-up), wraps the loop's parts in
``time.thread_time()`` counters and runs until ``--frames``. Figures are milliseconds of CPU per
frame between frame 45 and the last: ``process_ms`` (every thread), ``render_ms`` (the simulator, a
camera's ISP), ``encoder_ms`` (``X264Encoder.cpu_s``: libx264's threads and the loop's time in
encode()), one line per wrapped part (loop thread only, nested parts counted in their callers too)
and ``ratio``, what ``scripts/bench run`` reports as ``ratio``: (process - render) / encoder. Unlike
a profiler it adds about a microsecond per wrapped call, so the ratio is the daemon's own.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cv2

import agent.device.control_plane as control_plane
import agent.recording.encoder as encoder_mod
import agent.recording.recorder as recorder_mod
import agent.runtime.frame_loop as frame_loop
import agent.runtime.status_file as status_file
import agent.runtime.ticks as ticks
import motion.detector as detector_mod
from agent.app import RunOptions, build
from agent.config import Config
from agent.runtime.malloc import disable_transparent_hugepages, fix_mmap_threshold

WARMUP_FRAMES = 45
SPENT: collections.Counter[str] = collections.Counter()

PARTS: list[tuple[Any, str, str]] = [
    (frame_loop.Pipeline, "process", "pipeline.process"),
    (recorder_mod.Recorder, "push", "recorder.push"),
    (encoder_mod.X264Encoder, "encode", "x264.encode"),
    (recorder_mod.Recorder, "_take", "recorder.ring_and_clip"),
    (recorder_mod.Recorder, "offer_snapshot", "recorder.offer_snapshot"),
    (recorder_mod.Recorder, "start_clip", "recorder.start_clip"),
    (recorder_mod.Recorder, "end_clip", "recorder.end_clip"),
    (detector_mod.MotionDetector, "update", "detector.update"),
    (ticks.LoopTick, "__call__", "loop_tick"),
    (control_plane.DeviceController, "tick", "controller.tick"),
    (ticks, "cpu_json", "cpu_json"),
    (frame_loop, "_status_tick", "status_tick"),
    (status_file.StatusFile, "flush", "status.flush"),
]


def _wrap(owner: Any, name: str, label: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[label] += time.thread_time() - started

    setattr(owner, name, timed)


def _gc_timer() -> None:
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            SPENT[f"gc{info['generation']}"] += time.thread_time() - started[0]

    gc.callbacks.append(on_gc)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--realtime", action="store_true", help="pace the simulator at 15 fps")
    ap.add_argument("--source", default="sim:porch",
                    help="sim:SCENE or file:PATH (scripts/bench run renders its 40 s visit to "
                         "bench-out/visit-720p.mp4)")
    args = ap.parse_args()
    if args.frames <= WARMUP_FRAMES:
        raise SystemExit(f"--frames must be more than {WARMUP_FRAMES} (the warm-up)")
    for owner, name, label in PARTS:
        _wrap(owner, name, label)
    _gc_timer()
    fix_mmap_threshold()
    disable_transparent_hugepages()
    cv2.setNumThreads(1)
    data = tempfile.mkdtemp(prefix="doorward-profile-")
    daemon = build(Config(), RunOptions(data_dir=data, source=args.source,
                                        realtime=args.realtime,
                                        # a file is decoded in a child, as `doorward run` does
                                        child_source=args.source.startswith("file:")))
    enc = daemon.encoder
    assert isinstance(enc, encoder_mod.X264Encoder)

    def sample() -> dict[str, Any]:
        return {"process": time.process_time(), "render": daemon.camera.source_cpu_s,  # type: ignore[attr-defined]
                "encoder": enc.cpu_s(), "parts": dict(SPENT)}

    marks: list[dict[str, Any]] = []
    tick, count = daemon.tick, [0]

    def counting_tick() -> None:
        tick()
        count[0] += 1
        if count[0] in (WARMUP_FRAMES, args.frames):
            marks.append(sample())
        if count[0] >= args.frames:
            daemon.stop.set()

    daemon.tick = counting_tick  # type: ignore[assignment]
    gc.collect()
    gc.freeze()
    daemon.run()
    a, b = marks
    n = args.frames - WARMUP_FRAMES
    res: dict[str, Any] = {"frames": n, "realtime": args.realtime,
                           "load": os.getloadavg()[0]}
    for key in ("process", "render", "encoder"):
        res[f"{key}_ms"] = round((b[key] - a[key]) / n * 1e3, 3)
    for label in b["parts"]:
        res[f"{label}_ms"] = round((b["parts"][label] - a["parts"].get(label, 0.0)) / n * 1e3, 3)
    res["ratio"] = round((res["process_ms"] - res["render_ms"]) / res["encoder_ms"], 3)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
