"""``scripts/bench detection --cache``: the detector's output is read back only while nothing it
depends on has changed, and scoring from it gives the same events as rendering anew."""

from __future__ import annotations

from pathlib import Path

import pytest

import scripts.bench_detection as bench
from agent.camera.sim import get_scene
from motion import DetectorParams, EventParams

SIZE = (320, 180)


def test_a_cached_run_scores_the_same_events_without_running_the_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = bench.run_scene("passerby", SIZE, DetectorParams(), EventParams(), seed=3)
    first = bench.run_scene("passerby", SIZE, DetectorParams(), EventParams(), seed=3,
                            cache=tmp_path)
    assert len(list(tmp_path.glob("passerby-3-*.pickle"))) == 1
    assert not list(tmp_path.glob("*.tmp"))

    def no_detector(*_: object) -> None:
        raise AssertionError("the cached output should have been read")

    monkeypatch.setattr(bench, "MotionDetector", no_detector)
    again = bench.run_scene("passerby", SIZE, DetectorParams(), EventParams(), seed=3,
                            cache=tmp_path)
    assert fresh.detected  # the comparison below could fail: there are events to compare
    assert fresh.detected == first.detected == again.detected
    assert fresh.frames == again.frames
    assert fresh.suppressed_frames == again.suppressed_frames


@pytest.fixture
def motion_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``motion/`` folder (a detector and a tracker module) as the cache's sources."""
    src = tmp_path / "motion"
    src.mkdir()
    (src / "detector.py").write_text("x = 1\n")
    (src / "events.py").write_text("y = 1\n")
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "_CACHE_SOURCES", ("motion",))
    return src


BASE = ("visit", SIZE, DetectorParams(), 0, None)


def _key(name: str, size: tuple[int, int], det: DetectorParams, seed: int,
         stress: str | None) -> str:
    return bench._cache_key(get_scene(name, seed=seed), size, det, stress)


def test_the_key_changes_with_every_input_the_detector_output_depends_on(
    motion_src: Path,
) -> None:
    key = _key(*BASE)
    assert _key(*BASE) == key
    others = [
        ("passerby", SIZE, DetectorParams(), 0, None),
        ("visit", (640, 360), DetectorParams(), 0, None),
        ("visit", SIZE, DetectorParams(noise_k=4.5), 0, None),
        ("visit", SIZE, DetectorParams(), 1, None),
        ("visit", SIZE, DetectorParams(), 0, "crf=32"),
    ]
    assert len({_key(*o) for o in others} | {key}) == len(others) + 1
    (motion_src / "detector.py").write_text("x = 2\n")  # an edit to the detector renders anew
    assert _key(*BASE) != key


def test_a_new_module_counts_and_the_trackers_modules_do_not(motion_src: Path) -> None:
    key = _key(*BASE)
    (motion_src / "events.py").write_text("y = 2\n")  # the tracker: tuning it keeps the cache
    assert _key(*BASE) == key
    (motion_src / "new_filter.py").write_text("z = 1\n")  # a module added later: renders anew
    assert _key(*BASE) != key
