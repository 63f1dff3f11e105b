"""Could an event carry a ``kind`` (person, vehicle, animal, other) from a model we already ship?
A probe for issue 18's optional classifier, not part of the daemon.

Usage (OpenCV 4.x: the Pi's packages; OpenCV 5's wheel has no ``HOGDescriptor`` or
``CascadeClassifier``)::

    PYTHONPATH=$PWD .venv-pi/bin/python scripts/probe_classifier.py [--every-s 0.5] [--width 640]

Runs OpenCV's bundled HOG people detector (Dalal-Triggs, in the opencv-python-headless wheel,
nothing downloaded) on the real footage in tests/data/footage every ``--every-s`` seconds, at
``--width`` pixels wide, and prints per file: the frames inside annotated person events where it
found a person, the frames outside any event it flagged, when it first found each event's person
(seconds after the event's start; None: never), and its CPU per frame. Default parameters only:
nothing is tuned on the footage, so the HOLDOUT files stay unseen by the motion detector's tuning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

FOOTAGE = Path(__file__).resolve().parent.parent / "tests" / "data" / "footage"


def probe_file(path: Path, events: list[tuple[float, float, str]], every_s: float,
               width: int, hog: Any) -> dict[str, object]:  # cv2.HOGDescriptor (4.x only)
    """The detector's hits on one file, sampled every ``every_s`` seconds."""
    inside, outside = [0, 0], [0, 0]
    first: dict[int, float | None] = {i: None for i in range(len(events))}
    cpu: list[float] = []
    last = -1.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t - last < every_s:
                continue
            last = t
            img = frame.to_ndarray(format="bgr24")
            h, w = img.shape[:2]
            small = cv2.resize(img, (width, round(width * h / w)), interpolation=cv2.INTER_AREA)
            started = time.thread_time()
            rects, _ = hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
            cpu.append(time.thread_time() - started)
            hit = len(rects) > 0
            during = [i for i, (a, b, _) in enumerate(events) if a <= t <= b]
            tally = inside if during else outside
            tally[0] += hit
            tally[1] += 1
            for i in during:
                if hit and first[i] is None:
                    first[i] = round(t - events[i][0], 1)
    return {"kinds": [e[2] for e in events], "event_frames_with_person": inside,
            "idle_frames_with_person": outside, "first_person_s": first,
            "cpu_ms_per_frame": round(1e3 * statistics.median(cpu), 1) if cpu else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every-s", type=float, default=0.5, help="seconds between probed frames")
    ap.add_argument("--width", type=int, default=640, help="probed image width in pixels")
    args = ap.parse_args()
    if not hasattr(cv2, "HOGDescriptor"):
        raise SystemExit(f"OpenCV {cv2.__version__} has no HOGDescriptor: run this with the Pi's "
                         "packages (.venv-pi/bin/python, OpenCV 4.x)")
    cv2.setNumThreads(1)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
    ann = json.loads((FOOTAGE / "annotations.json").read_text())
    out = {}
    for name, f in ann["files"].items():
        events = [(float(a), float(b), str(kind)) for a, b, kind in f["events"]]
        out[name] = {"split": f["split"],
                     **probe_file(FOOTAGE / name, events, args.every_s, args.width, hog)}
    print(json.dumps({"opencv": cv2.__version__, "numpy": np.__version__, **out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
