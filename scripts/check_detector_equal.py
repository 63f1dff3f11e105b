"""Bit-for-bit equality of this tree's :class:`motion.MotionDetector` with another tree's.

Usage (main's venv; ``--old`` is a checkout or ``git archive`` of the reference, e.g. main)::

    mkdir -p /tmp/old && git archive main | tar -x -C /tmp/old
    PYTHONPATH=$PWD python scripts/check_detector_equal.py --old /tmp/old [--frames 900]
    PYTHONPATH=$PWD python scripts/check_detector_equal.py --old /tmp/old --plant ulp  # must fail

Both detectors are fed the same frames side by side: simulated scenes (day, rain, foliage, dusk,
IR, headlights) at 320x180 and upscaled to 1280x720, the rendered ``bench-out/visit-720p.mp4``
when present, with and without zones and privacy masks, under several ``DetectorParams``
variants. Every ``MotionResult`` field is compared with ``==`` (floats to the bit) and every
piece of state the old detector keeps (arrays: dtype, shape and values; scalars) after every
frame. Exit status 1 and the first difference on a mismatch. ``--plant`` changes the new
detector on purpose to show the harness sees it: ``ulp`` moves one background pixel by one
float32 ulp at frame 200, ``dense`` makes the speck filter need 85 instead of 84.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.camera.sim import SimCamera, get_scene  # noqa: E402

SCENES = [
    ("visit", 0), ("weather", 1), ("nuisance_10min", 0), ("porch", 2), ("close_visit", 0),
    ("cat", 1), ("dusk_visit", 0), ("dusk_passerby", 1), ("ir_night_visit", 0),
    ("porch_light_visit", 3), ("headlights", 0), ("headlights_visit", 1),
    ("dark_nuisance_10min", 0),
]
ZONES = (((0.1, 0.2), (0.9, 0.2), (0.9, 1.0), (0.1, 1.0)),)
MASKS = (((0.0, 0.0), (0.3, 0.0), (0.3, 0.25), (0.0, 0.25)), ((0.7, 0.6), (1.0, 0.5), (1.0, 1.0)))
VARIANTS: list[tuple[str, dict[str, Any], bool]] = [  # name, DetectorParams overrides, zones/masks
    ("default", {}, False),
    ("zones+masks", {}, True),
    ("lit_raw", {"lit_raw": True}, False),
    ("local_k=0", {"local_k": 0.0}, False),
    ("detect_k=0", {"detect_k": 0.0}, True),
    ("no persist/open/blur", {"persist": False, "open_ksize": 1, "blur_ksize": 1}, False),
    ("no dark_confirm, persist off", {"dark_confirm": 0.0, "persist": False}, True),
    ("work_width=120", {"work_width": 120, "lit_raw": True}, False),
]
STATE_SKIP = {"params", "_geo", "_zones", "_masks"}


def load_tree(root: Path) -> tuple[type, type]:
    """MotionDetector and DetectorParams of the ``motion`` package under ``root``, imported
    apart from this tree's (its modules are taken out of ``sys.modules`` afterwards)."""
    saved = {k: v for k, v in sys.modules.items() if k == "motion" or k.startswith("motion.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        det = importlib.import_module("motion.detector")
        params = importlib.import_module("motion.detector_params")
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == "motion" or k.startswith("motion.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert str(root) in str(det.__file__), det.__file__
    return det.MotionDetector, params.DetectorParams


def sim_frames(name: str, seed: int, limit: int) -> list[tuple[np.ndarray, float]]:
    cam = SimCamera(get_scene(name, seed=seed), width=640, height=360, luma_width=320, seed=seed)
    out = []
    with cam:
        for frame in cam.frames():
            out.append((frame.luma.copy(), frame.t))
            if len(out) >= limit:
                break
    return out


def file_frames(path: Path, limit: int) -> list[tuple[np.ndarray, float]]:
    import av

    out = []
    with av.open(str(path)) as box:
        for i, frame in enumerate(box.decode(video=0)):
            out.append((frame.to_ndarray(format="gray").copy(), i / 15.0))
            if len(out) >= limit:
                break
    return out


def _padded(frame: np.ndarray) -> np.ndarray:
    """``frame`` as a view into wider rows (a camera buffer's stride), the padding noise."""
    h, w = frame.shape
    rows = np.random.default_rng(h).integers(0, 256, (h, w + 64), np.uint8)
    rows[:, :w] = frame
    return rows[:, :w]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:  # NaN
        return True
    return type(a) is type(b) and bool(a == b)


def _diff(old: Any, new: Any, r_old: Any, r_new: Any) -> str | None:
    for f in ("t", "motion", "area", "boxes", "suppressed", "threshold", "lit", "brighter",
              "lit_raw"):
        if not _same(getattr(r_old, f), getattr(r_new, f)):
            return f"result.{f}: {getattr(r_old, f)!r} != {getattr(r_new, f)!r}"
    for k, v in vars(old).items():
        if k in STATE_SKIP:
            continue
        if not _same(v, getattr(new, k, "<missing>")):
            return f"state {k} differs"
    return None


def run(frames: list[tuple[np.ndarray, float]], olds: tuple[type, type],
        news: tuple[type, type], over: dict[str, Any], zoned: bool,
        plant: Callable[[Any, int], None] | None) -> tuple[int, str | None]:
    kw = {"zones": ZONES, "masks": MASKS} if zoned else {}
    old = olds[0](olds[1](**over), **kw)
    new = news[0](news[1](**over), **kw)
    for i, (luma, t) in enumerate(frames):
        r_old = old.update(luma, t)
        r_new = new.update(luma, t)
        if plant is not None:
            plant(new, i)
        d = _diff(old, new, r_old, r_new)
        if d:
            return i, d
    return len(frames), None


def inputs(frames: int) -> Iterator[tuple[str, list[tuple[np.ndarray, float]]]]:
    for name, seed in SCENES:
        small = sim_frames(name, seed, frames)
        yield f"{name}#{seed} 320x180", small
        if name in ("visit", "weather", "dusk_visit", "headlights"):
            big = [(cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR), t)
                   for f, t in small[: frames // 2]]
            yield f"{name}#{seed} 1280x720 (upscaled)", big
        if name in ("visit", "dusk_visit"):
            yield f"{name}#{seed} 1280x720 in 1344-wide rows", [(_padded(f), t) for f, t in big]
            for w, h in ((640, 360), (1920, 1080), (1000, 562)):
                yield f"{name}#{seed} {w}x{h} (resized)", [
                    (cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR), t)
                    for f, t in small[: frames // 3]]
    mp4 = ROOT / "bench-out" / "visit-720p.mp4"
    if mp4.exists():
        yield "bench-out/visit-720p.mp4", file_frames(mp4, 600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the reference tree (has motion/)")
    ap.add_argument("--frames", type=int, default=900, help="frames per simulated scene")
    ap.add_argument("--plant", choices=("ulp", "dense"), help="break the new detector on purpose")
    a = ap.parse_args(argv)
    olds = load_tree(a.old.resolve())
    import motion.detector as det_mod
    from motion.detector_params import DetectorParams

    news = (det_mod.MotionDetector, DetectorParams)
    plant = None
    if a.plant == "ulp":
        def plant(det: Any, i: int) -> None:
            if i == 200 and det._bg is not None:
                det._bg[40, 80] = np.nextafter(det._bg[40, 80], np.float32(np.inf))
    elif a.plant == "dense":  # the speck filter where the per-pixel tests call it
        import motion.change_evidence as ev_mod
        ev_mod.dense = lambda m, out=None: ev_mod.above(cv2.blur(m, (3, 3)), 85)  # type: ignore
    total, bad, start = 0, 0, time.perf_counter()
    for label, frames in inputs(a.frames):
        for vname, over, zoned in VARIANTS:
            n, d = run(frames, olds, news, over, zoned, plant)
            total += n
            if d:
                bad += 1
                print(f"DIFFER {label} [{vname}] at frame {n}: {d}", flush=True)
        print(f"{label}: {len(frames)} frames x {len(VARIANTS)} variants checked", flush=True)
    print(f"{total} frame updates compared in {time.perf_counter() - start:.0f} s; "
          f"{bad} runs differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
