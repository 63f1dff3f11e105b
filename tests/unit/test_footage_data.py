"""The real footage in tests/data/footage is what its annotations say (scripts/bench footage scores
detection against them): well-formed, every file there and decodable at its annotated duration,
the split held out as documented, and every file credited in tests/data/README.md."""

from __future__ import annotations

import json
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import pytest

from scripts.bench_detection import SceneReport
from scripts.bench_footage import end_lags, nuisance_intervals, overlap_s

DATA = Path(__file__).resolve().parents[1] / "data"
FOOTAGE = DATA / "footage"
KINDS = {"person", "vehicle", "animal"}
SPLITS = {"TUNE", "HOLDOUT"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOOTAGE / "annotations.json").read_text())
    return data


def test_annotations_are_well_formed(doc: dict[str, Any]) -> None:
    assert doc["schema"] == 1 and doc["files"]
    for name, ann in doc["files"].items():
        dur = ann["duration_s"]
        assert ann["split"] in SPLITS, name
        events, nuisance = ann["events"], ann["nuisance"]
        for a, b, kind in events:
            assert 0 <= a < b <= dur and kind in KINDS, (name, a, b, kind)
        for (_, b0, _), (a1, _, _) in pairwise(events):
            assert b0 < a1, f"{name}: events overlap or touch; merge them into one"
        # Events and nuisance tile the file, in order, with no gap and no overlap.
        spans = sorted([(a, b) for a, b, _ in events] + [(a, b) for a, b, _ in nuisance])
        assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(dur), name
        for (_, b0), (a1, _) in pairwise(spans):
            assert a1 == pytest.approx(b0), (name, b0, a1)
        assert all(isinstance(what, str) and what for _, _, what in nuisance), name


def test_holdout_is_about_forty_percent_of_event_time_and_mixes_scenes(doc: dict[str, Any]) -> None:
    def event_s(split: str) -> float:
        return sum(b - a for ann in doc["files"].values() if ann["split"] == split
                   for a, b, _ in ann["events"])

    share = event_s("HOLDOUT") / (event_s("HOLDOUT") + event_s("TUNE"))
    assert 0.3 <= share <= 0.5
    held = {ann["source"] for ann in doc["files"].values() if ann["split"] == "HOLDOUT"}
    assert held == {ann["source"] for ann in doc["files"].values()}


def test_every_file_decodes_at_its_annotated_duration(doc: dict[str, Any]) -> None:
    for name, ann in doc["files"].items():
        with av.open(str(FOOTAGE / name)) as container:
            stream = container.streams.video[0]
            # No deblocking: faster, and every frame is still decoded.
            stream.codec_context.options = {"skip_loop_filter": "all"}
            assert stream.codec_context.name == "h264", name
            assert [stream.width, stream.height] == ann["size"], name
            assert stream.width * stream.height <= 1280 * 720, name
            fps = Fraction(stream.average_rate)
            assert float(fps) == pytest.approx(ann["fps"]), name
            frames = sum(1 for _ in container.decode(stream))
        assert frames / fps == pytest.approx(ann["duration_s"], abs=1 / float(fps)), name


def test_no_stray_files_and_the_readme_credits_each(doc: dict[str, Any]) -> None:
    on_disk = {p.name for p in FOOTAGE.iterdir()} - {"annotations.json"}
    assert on_disk == set(doc["files"])
    readme = (DATA / "README.md").read_text()
    for name in doc["files"]:
        assert f"`{name}`" in readme, f"tests/data/README.md does not list {name}"
    assert "CC BY 4.0" in readme and "creativecommons.org/licenses/by/4.0" in readme
    assert sum(p.stat().st_size for p in FOOTAGE.iterdir()) < 25 * 2**20


def test_bench_scoring_helpers() -> None:
    # Nuisance = the file minus GT events extended by the post-roll.
    assert nuisance_intervals(20.0, [(2.0, 4.0), (6.0, 7.0)], 3.0) == [(0.0, 2.0), (10.0, 20.0)]
    assert overlap_s([(1.0, 3.0), (9.0, 12.0)], [(0.0, 2.0), (10.0, 20.0)]) == pytest.approx(3.0)
    rep = SceneReport("x", 30.0, [(2.0, 4.0, "person"), (6.0, 7.0, "person"),
                                  (20.0, 22.0, "vehicle")])
    rep.detected = [(2.1, 7.5, 2.5), (20.2, 23.0, 20.6)]
    assert end_lags(rep) == (2, [pytest.approx(1.0)])
