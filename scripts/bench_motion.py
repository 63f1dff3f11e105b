"""Benchmark the motion core: milliseconds per MotionDetector.update on one core.

Usage: ``python scripts/bench_motion.py [--frames N] [--json]`` (called by ``scripts/bench``).
Frames are textured greyscale images with a moving box and sensor noise, at 1280x720 (a full-size
Y plane) and 320x180 (the analysis image cameras deliver). Frames are made before timing starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np

from motion import MotionDetector

TARGET_MS_720P = 0.5


def make_frames(width: int, height: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """Textured background with a box crossing it and per-frame noise (16 distinct noise fields)."""
    rng = np.random.default_rng(seed)
    tex = rng.normal(120, 40, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
    bg = cv2.resize(tex, (width, height), interpolation=cv2.INTER_CUBIC)
    bg += rng.normal(0, 10, (height, width)).astype(np.float32)
    noises = [rng.normal(0, 3, (height, width)).astype(np.float32) for _ in range(16)]
    frames = []
    bw, bh = width // 6, height // 2
    for i in range(n):
        img = bg + noises[i % 16]
        x = int((width + bw) * (i % 60) / 60) - bw
        x0, x1 = max(x, 0), min(x + bw, width)
        if x1 > x0:
            img[height // 4 : height // 4 + bh, x0:x1] = 40.0
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def bench(width: int, height: int, n: int) -> dict[str, float]:
    frames = make_frames(width, height, min(n, 120))
    det = MotionDetector()
    for i in range(30):  # warm up caches and the background
        det.update(frames[i % len(frames)], i / 15)
    times = []
    motion = 0
    for i in range(n):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        r = det.update(f, (30 + i) / 15)
        times.append(time.perf_counter() - t0)
        motion += r.motion
    ms = np.array(times) * 1000
    return {
        "width": width,
        "height": height,
        "frames": n,
        "mean_ms": float(ms.mean()),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "motion_frames": motion,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rows = [bench(1280, 720, args.frames), bench(320, 180, args.frames)]
    ok = rows[0]["mean_ms"] <= TARGET_MS_720P
    if args.json:
        print(json.dumps({"target_ms_720p": TARGET_MS_720P, "ok": ok, "results": rows}, indent=2))
    else:
        print(
            f"{'input':>10} {'frames':>7} {'mean ms':>8} {'p50 ms':>7} {'p95 ms':>7} {'motion':>7}"
        )
        for r in rows:
            print(
                f"{r['width']}x{r['height']:<5} {r['frames']:>7} {r['mean_ms']:>8.3f} "
                f"{r['p50_ms']:>7.3f} {r['p95_ms']:>7.3f} {r['motion_frames']:>7}"
            )
        print(
            f"target: <= {TARGET_MS_720P} ms per 1280x720 frame on one core: "
            f"{'met' if ok else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
