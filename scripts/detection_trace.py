"""One scene's detector output and tracker decisions frame by frame, for finding out why an
event started (or did not): ``scripts/bench detection --scenes NAME --seeds N --trace T0-T1
[--cache DIR] [--stress ...] [--ev ...]``.

Each line is one frame inside the window: its time, whether the detector called it motion (and
why not, when it suppressed it), the moving area and the brightness change (``lit``, ``lit_raw``,
``dimmed``), how far the largest region lies from the foliage the flicker map knows (``fol``, a
fraction of the picture's width), then each region as ``(x,y,w,h) brighter lift``: its box
(fractions of the picture), the fraction of its pixels brighter than the background, and its
mean residual in grey levels. ``START #id onset`` / ``END #id`` mark what the tracker emitted on
that frame. The tracker runs from the scene's start, so its state at T0 is the real one.

Used by :mod:`scripts.bench_detection`; :func:`trace_lines` is the whole of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from motion import EventEnded, EventParams, EventStarted, EventTracker, MotionResult


def trace_lines(rows: Sequence[MotionResult], params: EventParams, t0: float,
                t1: float) -> list[str]:
    """The trace of ``rows`` (a scene's detector output, as ``detector_rows`` gives it) between
    ``t0`` and ``t1`` seconds, through a tracker with ``params``."""
    tracker = EventTracker(params)
    lines = []
    for r in rows:
        out = tracker.observe(r)
        if r.t < t0 - 1e-9:
            continue
        if r.t > t1 + 1e-9:
            break
        lines.append(_line(r) + "".join(_mark(e) for e in out))
    return lines


def _line(r: MotionResult) -> str:
    state = "motion" if r.motion else (r.suppressed or "still")
    nan = float("nan")
    regions = " ".join(
        "({:.3f},{:.3f},{:.3f},{:.3f}) {:.2f} {:+.0f}".format(
            *box, r.brighter[i] if i < len(r.brighter) else nan,
            r.residual[i] if i < len(r.residual) else nan)
        for i, box in enumerate(r.boxes))
    return (f"{r.t:8.3f} {state:<12} area {r.area:.4f} lit {r.lit:.3f} raw {r.lit_raw:.3f} "
            f"dim {r.dimmed:.2f} fol {r.foliage:.3f}  {regions}")


def _mark(e: EventStarted | EventEnded) -> str:
    if isinstance(e, EventStarted):
        return f"  START #{e.event_id} onset {e.onset_t:.3f}"
    return f"  END #{e.event_id} ({e.reason})"
