"""``scripts/bench detection --trace``: a scene's frames, the detector's regions and the
tracker's decisions, for finding out why an event started when it did."""

from __future__ import annotations

import re

import pytest

import scripts.bench_detection as bench
from agent.camera.sim import get_scene
from motion import DetectorParams, EventParams
from scripts.detection_trace import trace_lines

SIZE = (320, 180)


def test_the_trace_marks_the_frame_the_event_started_on_as_the_bench_scores_it() -> None:
    scene = get_scene("passerby", seed=3)
    rows = bench.detector_rows(scene, SIZE, DetectorParams())
    rep = bench.run_scene("passerby", SIZE, DetectorParams(), EventParams(), seed=3)
    onset, _last, decided = rep.detected[0]
    lines = trace_lines(rows, EventParams(), decided - 0.5, decided + 0.5)
    assert len(lines) == 15  # 15 fps, both ends included
    started = [ln for ln in lines if "START #" in ln]
    assert len(started) == 1
    assert float(started[0].split()[0]) == pytest.approx(decided, abs=1e-3)
    assert f"onset {onset:.3f}" in started[0]
    # Every motion frame lists at least one region: box, brighter fraction, lift.
    region = re.compile(r"\(\d\.\d{3},\d\.\d{3},\d\.\d{3},\d\.\d{3}\) [\d.]+ [+-]\d+")
    assert all(region.search(ln) for ln in lines if " motion " in ln)


def test_trace_needs_one_scene_and_one_seed_and_a_window(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="one scene and one seed"):
        bench.main(["--scenes", "visit,passerby", "--seeds", "1", "--trace", "1-2"])
    with pytest.raises(SystemExit, match="T0-T1"):
        bench.main(["--scenes", "visit", "--seeds", "1", "--trace", "soon"])
