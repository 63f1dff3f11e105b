"""The detector's per-pixel noise floor (issue 18): leaves that shimmer in place and a visitor's
ghost start or hold nothing, while a crossing is still seen."""

from __future__ import annotations

import numpy as np
import pytest

from motion import DetectorParams, MotionDetector
from tests.unit.test_detector import FPS, background, events_in, render, run, walk


@pytest.fixture
def bg() -> np.ndarray:
    return background()


def shimmer(bg: np.ndarray, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """A patch of leaves (~0.7 % of the frame) catching the light at random: each frame a
    random half of its 4x4 cells is 60 grey levels brighter."""
    out = []
    for _ in range(n):
        img = bg.copy()
        cells = rng.random((4, 4)) < 0.5
        patch = np.kron(cells, np.ones((5, 5))).astype(np.float32) * 60.0
        img[100:120, 40:60] += patch
        out.append(render(img, rng))
    return out


def test_leaves_shimmering_in_place_start_no_event_and_a_crossing_is_still_seen(
    bg: np.ndarray,
) -> None:
    rng = np.random.default_rng(21)
    det = MotionDetector()
    results = run(det, iter(shimmer(bg, rng, 40 * int(FPS))))
    assert events_in(results[8:]) == 0
    # The floor is local: a crossing elsewhere is seen as before.
    crossing = run(det, walk(bg, rng, (30, 70), y=20), 40.0)
    assert sum(r.motion for r in crossing) >= 0.7 * len(crossing)
    assert det._mad is not None and det._mad[50:60, 20:30].mean() > 2 * det._mad[10:40].mean()


def last_motion_in_visit(params: dict[str, float]) -> tuple[float, float]:
    """(GT end, last motion frame) of the simulated ``visit`` (seed 1) at 320x180."""
    from agent.camera.sim import SimCamera, get_scene

    scene = get_scene("visit", seed=1)
    det = MotionDetector(DetectorParams(**params))  # type: ignore[arg-type]
    last = 0.0
    with SimCamera(scene, width=320, height=180, luma_width=320) as cam:
        for f in cam.frames():
            if det.update(f.luma, f.t).motion:
                last = f.t
    return scene.events[0].end, last


def test_motion_ends_when_the_visitor_leaves() -> None:
    # The visitor stood at the door ~20 s and faded partly into the background: where they stood
    # the floor rose (a tenth of the usual rate), so the ghost they leave is not motion for 7 s.
    end, last = last_motion_in_visit({})
    assert last <= end + 1.5
    end, last = last_motion_in_visit({"local_k": 0.0})
    assert last > end + 5.0  # what the floor removes
