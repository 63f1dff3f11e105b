"""Detection quality over every built-in finite simulated scene: recall, false events, onset
latency.

Usage: ``python scripts/bench_detection.py [--scenes a,b] [--seeds 0-63] [--jobs N] [--json]``
(called by ``scripts/bench``; the default 64 seeds take about 8 minutes on 2 cores; ``--seeds
128-191`` is the held-out set BENCHMARKS.md quotes). Prints one row per scene and seed, then one per
scene over the seeds. Exits 1 if a target is missed:

- recall >= 0.97 of ground-truth events (a GT event is found if a detected event overlaps it);
- <= 1 false event per hour of nuisance footage (time outside ground-truth events, padded by the
  post-roll; a detected event overlapping no GT event is false);
- onset latency (EventStarted.t - GT start, 0 if an event was already open) p95 <= 0.5 s;
- <= 2 % of idle time flagged: time inside detected intervals outside the GT (padded 1 s before,
  the post-roll after), over the nuisance time.

``--stress`` darkens, adds noise to and H.264-encodes the analysis image (scripts/bench_stress.py);
``--det``/``--ev`` override DetectorParams/EventParams fields while tuning; ``--cache DIR`` keeps
the detector's output per scene and seed (keyed by every input, the detector's and simulator's
source included), so a second run with other ``--ev`` settings replays the tracker only: 64 seeds
in well under a minute instead of 8 (the fps column then counts the replay). ``--trace T0-T1``
with one scene and seed prints its frames in that window, the detector's regions and the
tracker's decisions (scripts/detection_trace.py), from the cache when one is given.

Also reported, with no target: the detection onset (EventStarted.onset_t, the first motion frame
of the run that started the event, - GT start), i.e. the latency minus the ``min_motion_s`` wait.
``--min-motion-s`` overrides EventParams.min_motion_s to compare settings.

Detected intervals are what ``doorward analyze`` reports: ``[onset_t, last_motion_t]``. Only the
luma image is analysed, so scenes are rendered small (``--size``, default 640x360 with 320-wide
luma: the luma is downscaled from the main image as on a camera; the main size does not matter
otherwise). Uses only motion detection (no ring button), with default DetectorParams and
EventParams.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # scripts.bench_stress, when run as scripts/bench_detection.py

from agent.camera.sim import SimCamera, get_scene, scene_names  # noqa: E402
from agent.camera.sim.scene import Scene  # noqa: E402
from motion import (  # noqa: E402
    DetectorParams,
    EventEnded,
    EventParams,
    EventStarted,
    EventTracker,
    MotionDetector,
    MotionResult,
)
from scripts.bench_stress import Stress  # noqa: E402
from scripts.detection_trace import trace_lines  # noqa: E402

RECALL_TARGET = 0.97
FALSE_PER_HOUR_TARGET = 1.0
LATENCY_P95_TARGET_S = 0.5
IDLE_FLAGGED_TARGET = 0.02


@dataclass
class SceneReport:
    name: str
    duration_s: float
    gt: list[tuple[float, float, str]]
    detected: list[tuple[float, float, float]] = field(default_factory=list)  # onset, last, decided
    matched_gt: int = 0
    false_events: int = 0
    latencies: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)  # detected onset_t - GT start
    nuisance_s: float = 0.0
    flagged_idle_s: float = 0.0  # time inside detected intervals outside padded GT
    frames: int = 0
    elapsed_s: float = 0.0
    suppressed_frames: dict[str, int] = field(default_factory=dict)


def run_scene(
    name: str,
    size: tuple[int, int],
    det_params: DetectorParams,
    ev_params: EventParams,
    seed: int = 0,
    stress: str | None = None,
    cache: Path | None = None,
) -> SceneReport:
    """Render scene ``name``/``seed``, run the detector and the tracker over it and score the
    events. With ``cache``, the detector's output is read from (or first written to) a file
    there (:func:`detector_rows`), so a tracker setting is scored in seconds."""
    scene = get_scene(name, seed=seed)
    assert scene.duration_s is not None
    label = name if seed == 0 else f"{name}#{seed}"
    rep = SceneReport(label, scene.duration_s, [(e.start, e.end, e.kind) for e in scene.events])
    start = time.perf_counter()
    rows = detector_rows(scene, size, det_params, stress, cache)
    tracker = EventTracker(ev_params)
    opened: dict[int, EventStarted] = {}
    t = 0.0
    for row in rows:
        t = row.t
        rep.frames += 1
        if row.suppressed:
            rep.suppressed_frames[row.suppressed] = rep.suppressed_frames.get(row.suppressed, 0) + 1
        _collect(tracker.observe(row), opened, rep)
    _collect(tracker.finish(t), opened, rep)
    rep.elapsed_s = time.perf_counter() - start
    _score(rep, ev_params.post_roll_s)
    return rep


def detector_rows(
    scene: Scene,
    size: tuple[int, int],
    det_params: DetectorParams,
    stress: str | None = None,
    cache: Path | None = None,
) -> list[MotionResult]:
    """The detector's result for every frame of ``scene`` (``get_scene(name, seed=...)``).

    With ``cache`` (a directory), the results are kept in a file named by a digest of every
    input: the scene (its whole value, not only its name and seed), size, stress, the
    DetectorParams and the source of the detector, the renderer and the stress filter, so an
    edit to any of them renders anew and a stale file is never read. Tuning EventParams then
    replays the tracker only (``--cache``). The files are pickles, which run code when read:
    give a directory that only you write to."""
    path = cache / f"{_cache_key(scene, size, det_params, stress)}.pickle" if cache else None
    if path is not None and path.exists():
        with path.open("rb") as f:
            rows: list[MotionResult] = pickle.load(f)
        return rows
    det = MotionDetector(det_params)
    st = Stress.parse(stress)
    rng = np.random.default_rng([scene.seed, 18])
    rows = []
    with SimCamera(scene, width=size[0], height=size[1], luma_width=320) as cam:
        for frame in cam.frames():
            luma = st.apply(frame.luma, rng) if st.active else frame.luma
            rows.append(det.update(luma, frame.t))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # parallel jobs never share a name
        with tmp.open("wb") as f:
            pickle.dump(rows, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return rows


# What the detector's output depends on besides the scene's value and the arguments: every
# module of these folders but those listed after them, so a module added later counts by default
# (renders anew) rather than being missed. Left out: the event tracker's modules, and the scene
# builders, whose product is keyed by its repr (adding or editing one scene keeps the others').
_CACHE_SOURCES = ("motion", "agent/camera/sim", "scripts/bench_stress.py")
_CACHE_IGNORED = frozenset({
    "motion/events.py", "motion/event_params.py", "motion/light_hold.py", "motion/boxes.py",
    "motion/tracker_state.py", "motion/event_messages.py", "motion/trail.py",
    "motion/start_paths.py", "motion/waits.py",
    "agent/camera/sim/library.py", "agent/camera/sim/dark_scenes.py", "agent/camera/sim/cast.py",
})


def _cache_key(scene: Scene, size: tuple[int, int], det_params: DetectorParams,
               stress: str | None) -> str:
    h = hashlib.sha256(repr((scene, size, stress, det_params)).encode())
    for rel in _CACHE_SOURCES:
        top = ROOT / rel
        for path in sorted(top.rglob("*.py")) if top.is_dir() else [top]:
            key = path.relative_to(ROOT).as_posix()
            if key not in _CACHE_IGNORED:
                h.update(key.encode() + b"\0" + path.read_bytes())
    return f"{scene.name}-{scene.seed}-{h.hexdigest()[:16]}"


def _collect(
    events: list[EventStarted | EventEnded], opened: dict[int, EventStarted], rep: SceneReport
) -> None:
    for ev in events:
        if isinstance(ev, EventStarted):
            opened[ev.event_id] = ev
        else:
            s = opened.pop(ev.event_id)
            rep.detected.append((s.onset_t, ev.last_motion_t, s.t))


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


def _score(rep: SceneReport, post_roll_s: float) -> None:
    for g0, g1, _ in rep.gt:
        hits = [d for d in rep.detected if _overlaps(d[0], d[1], g0, g1)]
        if hits:
            rep.matched_gt += 1
            rep.latencies.append(max(0.0, min(d[2] for d in hits) - g0))
            rep.onsets.append(max(0.0, min(d[0] for d in hits) - g0))
    rep.false_events = sum(
        1 for d in rep.detected if not any(_overlaps(d[0], d[1], g0, g1) for g0, g1, _ in rep.gt)
    )
    # Nuisance time: the scene minus GT intervals (each extended by the post-roll), merged.
    padded = _merge([(g0, min(g1 + post_roll_s, rep.duration_s)) for g0, g1, _ in rep.gt])
    rep.nuisance_s = max(0.0, rep.duration_s - sum(b - a for a, b in padded))
    # Idle time flagged: detected intervals (onset .. last motion) outside the padded GT, the
    # padding also before GT (the detector may see a shadow or a sliver first).
    before = _merge([(max(0.0, g0 - 1.0), min(g1 + post_roll_s, rep.duration_s))
                     for g0, g1, _ in rep.gt])
    flagged = _merge([(d0, d1) for d0, d1, _ in rep.detected])
    rep.flagged_idle_s = sum(b - a for a, b in flagged) - sum(
        max(0.0, min(b, d) - max(a, c)) for a, b in flagged for c, d in before
    )


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def summarise(reports: list[SceneReport]) -> dict[str, Any]:
    gt = sum(len(r.gt) for r in reports)
    matched = sum(r.matched_gt for r in reports)
    false = sum(r.false_events for r in reports)
    nuisance_h = sum(r.nuisance_s for r in reports) / 3600
    lat = [x for r in reports for x in r.latencies]
    ons = [x for r in reports for x in r.onsets]
    recall = matched / gt if gt else 1.0
    fph = false / nuisance_h if nuisance_h else 0.0
    idle = sum(r.flagged_idle_s for r in reports) / max(1.0, sum(r.nuisance_s for r in reports))
    p50 = float(np.percentile(lat, 50)) if lat else 0.0
    p95 = float(np.percentile(lat, 95)) if lat else 0.0
    return {
        "gt_events": gt,
        "matched": matched,
        "recall": recall,
        "false_events": false,
        "nuisance_hours": nuisance_h,
        "false_per_hour": fph,
        "idle_flagged": idle,
        "latency_p50_s": p50,
        "latency_p95_s": p95,
        "detection_onset_p50_s": float(np.percentile(ons, 50)) if ons else 0.0,
        "detection_onset_p95_s": float(np.percentile(ons, 95)) if ons else 0.0,
        "ok": recall >= RECALL_TARGET
        and fph <= FALSE_PER_HOUR_TARGET
        and idle <= IDLE_FLAGGED_TARGET
        and p95 <= LATENCY_P95_TARGET_S,
    }


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def _overrides(text: str) -> dict[str, float]:
    """``k=v,...`` as keyword arguments; whole numbers stay ints (a width such as
    ``edge_cluster=8`` must be one)."""
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        number = float(value)
        out[key] = int(number) if number.is_integer() else number
    return out


def _parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", help="comma-separated scene names (default: every finite scene)")
    ap.add_argument("--size", default="640x360", help="render size WxH (default 640x360)")
    ap.add_argument(
        "--seeds",
        default="0-63",
        help="scene seeds, comma-separated, ranges allowed (e.g. 0-3,8; one take each; default "
        "0-63; BENCHMARKS.md also quotes the held-out 128-191)",
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="scenes evaluated in parallel processes (default: one per core)")
    ap.add_argument(
        "--min-motion-s",
        type=float,
        default=EventParams().min_motion_s,
        help="EventParams.min_motion_s (default: the EventParams default)",
    )
    ap.add_argument("--stress", default=None,
                    help="darken/noise/encode the analysis image: e.g. "
                    "dim=0.45,noise=6,row=1,crf=30 (scripts/bench_stress.py)")
    ap.add_argument("--det", default="",
                    help="DetectorParams overrides for tuning, e.g. local_k=5,ghost=0")
    ap.add_argument("--ev", default="", help="EventParams overrides for tuning, e.g. gap_s=0.2")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep the detector's output per scene and seed in this directory and "
                    "read it back while nothing it depends on changed: --ev tuning then "
                    "replays the tracker only (e.g. bench-out/detector-cache; pickles: a "
                    "directory only you write to)")
    ap.add_argument("--trace", default=None, metavar="T0-T1",
                    help="with one scene and one seed: print its frames between T0 and T1 s, "
                    "the detector's regions and the tracker's decisions "
                    "(scripts/detection_trace.py)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("-v", "--verbose", action="store_true", help="list detected events per scene")
    args = ap.parse_args(argv)
    names = (
        args.scenes.split(",")
        if args.scenes
        else [n for n in scene_names() if get_scene(n).duration_s is not None]
    )
    size = _parse_size(args.size)
    seeds = _parse_seeds(args.seeds)
    ev_params = EventParams(min_motion_s=args.min_motion_s, **_overrides(args.ev))
    det_params = DetectorParams(**_overrides(args.det))
    Stress.parse(args.stress)  # reject a bad spec before starting
    if args.trace is not None:
        return _trace(args.trace, names, seeds, size, det_params, ev_params, args)
    jobs = [(n, size, det_params, ev_params, seed, args.stress, args.cache)
            for seed in seeds for n in names]
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            reports = pool.starmap(run_scene, jobs, chunksize=1)
    else:
        reports = [run_scene(*job) for job in jobs]
    summary = summarise(reports)
    if args.json:
        doc = {
            "scenes": [_scene_doc(r) for r in reports],
            "totals": summary,
            "targets": {
                "recall": RECALL_TARGET,
                "false_per_hour": FALSE_PER_HOUR_TARGET,
                "idle_flagged": IDLE_FLAGGED_TARGET,
                "latency_p95_s": LATENCY_P95_TARGET_S,
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        _print_table(reports, summary, args.verbose)
        if len(seeds) > 1:
            _print_per_scene(reports)
    return 0 if summary["ok"] else 1


def _trace(window: str, names: list[str], seeds: list[int], size: tuple[int, int],
           det_params: DetectorParams, ev_params: EventParams, args: argparse.Namespace) -> int:
    """``--trace T0-T1``: one scene and seed, frame by frame (scripts/detection_trace.py)."""
    if len(names) != 1 or len(seeds) != 1:
        raise SystemExit(f"--trace needs one scene and one seed, not --scenes {args.scenes} "
                         f"--seeds {args.seeds}: e.g. --scenes lamp_visit --seeds 3")
    try:
        t0, t1 = (float(v) for v in window.split("-", 1))
    except ValueError:
        raise SystemExit(f"--trace {window!r}: give seconds as T0-T1, e.g. 12.5-14") from None
    scene = get_scene(names[0], seed=seeds[0])
    rows = detector_rows(scene, size, det_params, args.stress, args.cache)
    print(f"{scene.name}#{scene.seed}: ground truth "
          + (", ".join(f"{e.kind} {e.start:.3f}-{e.end:.3f}" for e in scene.events) or "none"))
    for line in trace_lines(rows, ev_params, t0, t1):
        print(line)
    return 0


def _scene_doc(r: SceneReport) -> dict[str, Any]:
    return {
        "scene": r.name,
        "duration_s": r.duration_s,
        "gt_events": len(r.gt),
        "detected": len(r.detected),
        "matched": r.matched_gt,
        "false_events": r.false_events,
        "onset_latency_s": [round(x, 3) for x in r.latencies],
        "detection_onset_s": [round(x, 3) for x in r.onsets],
        "nuisance_s": round(r.nuisance_s, 1),
        "flagged_idle_s": round(r.flagged_idle_s, 1),
        "frames": r.frames,
        "suppressed_frames": r.suppressed_frames,
        "gt": [{"start": a, "end": b, "kind": k} for a, b, k in r.gt],
        "events": [
            {"start": round(a, 3), "end": round(b, 3), "decided": round(c, 3)}
            for a, b, c in r.detected
        ],
    }


def _print_per_scene(reports: list[SceneReport]) -> None:
    """One line per scene over all seeds: what the issue asks to report per scene."""
    by_scene: dict[str, list[SceneReport]] = {}
    for r in reports:
        by_scene.setdefault(r.name.partition("#")[0], []).append(r)
    print(f"\n{'per scene':<16} {'GT':>4} {'match':>5} {'false':>5} {'nuis. h':>7} "
          f"{'onset-to-event p50 / p95 / max s':>34}")
    for name, rs in by_scene.items():
        lat = [x for r in rs for x in r.latencies]
        spread = (f"{np.percentile(lat, 50):.2f} / {np.percentile(lat, 95):.2f} / {max(lat):.2f}"
                  if lat else "-")
        nuis = sum(r.nuisance_s for r in rs)
        print(f"{name:<16} {sum(len(r.gt) for r in rs):>4} {sum(r.matched_gt for r in rs):>5} "
              f"{sum(r.false_events for r in rs):>5} {sum(r.nuisance_s for r in rs) / 3600:>7.2f} "
              f"{100 * sum(r.flagged_idle_s for r in rs) / max(1.0, nuis):>6.2f} "
              f"{spread:>34}")


def _print_table(reports: list[SceneReport], s: dict[str, Any], verbose: bool) -> None:
    print(
        f"{'scene':<22} {'dur s':>6} {'GT':>3} {'det':>4} {'match':>5} {'false':>5} "
        f"{'onset lat s':>14} {'fps':>6}"
    )
    for r in reports:
        lat = ",".join(f"{x:.2f}" for x in r.latencies) or "-"
        fps = r.frames / r.elapsed_s if r.elapsed_s else 0.0
        print(
            f"{r.name:<22} {r.duration_s:>6.0f} {len(r.gt):>3} {len(r.detected):>4} "
            f"{r.matched_gt:>5} {r.false_events:>5} {lat:>14} {fps:>6.0f}"
        )
        if verbose:
            for g in r.gt:
                print(f"    gt  {g[0]:7.2f} .. {g[1]:7.2f} {g[2]}")
            for d in r.detected:
                print(f"    det {d[0]:7.2f} .. {d[1]:7.2f} (started at {d[2]:.2f})")
            if r.suppressed_frames:
                print(f"    suppressed frames: {r.suppressed_frames}")
    print(
        f"recall {s['recall']:.3f} ({s['matched']}/{s['gt_events']}, target >= {RECALL_TARGET}); "
        f"false events {s['false_events']} in {s['nuisance_hours']:.2f} h of nuisance = "
        f"{s['false_per_hour']:.2f}/h (target <= {FALSE_PER_HOUR_TARGET}); idle flagged "
        f"{100 * s['idle_flagged']:.2f} % (target <= {100 * IDLE_FLAGGED_TARGET:.0f} %); "
        f"onset latency p50 "
        f"{s['latency_p50_s']:.2f} s, p95 {s['latency_p95_s']:.2f} s "
        f"(target <= {LATENCY_P95_TARGET_S}); {'OK' if s['ok'] else 'TARGETS MISSED'}"
    )
    print(
        f"detection onset (first motion frame of the run - GT start, no target): p50 "
        f"{s['detection_onset_p50_s']:.2f} s, p95 {s['detection_onset_p95_s']:.2f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
