"""Dusk (issue 18): a dim coat walking in at the border shows as fragments that the opening
removes one by one; ``edge_cluster`` groups them into a region a frame or more earlier. Noise
stays nothing, and a coat only brighter than the lawn (light on the move) is not helped."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from motion import DetectorParams, MotionDetector
from tests.unit.test_detector import FPS, run, still
from tests.unit.test_detector_dark import NOISE, lawn


def walk_in(bg: np.ndarray, rng: np.random.Generator, delta: float) -> Iterator[np.ndarray]:
    """A 30x70 box ``delta`` grey levels off the lawn stepping in at the left, 2 pixels a frame."""
    for i in range(30):
        img = bg.copy()
        img[60:130, 0 : 2 * i] += delta
        img += rng.normal(0.0, NOISE, img.shape).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8)


def first_region(edge_cluster: int, delta: float) -> tuple[int, int]:
    """(index of the first frame with a region as the coat walks in, regions on noise after)."""
    rng = np.random.default_rng(7)
    bg = lawn()
    det = MotionDetector(DetectorParams(edge_cluster=edge_cluster))
    run(det, still(bg, 120, rng, noise=NOISE))
    walking = run(det, walk_in(bg, rng, delta), 120 / FPS)
    quiet = run(det, still(bg, 300, rng, noise=NOISE), 150 / FPS)
    first = next((i for i, r in enumerate(walking) if r.boxes), len(walking))
    return first, sum(bool(r.boxes) for r in quiet)


def test_a_dim_coat_walking_in_is_a_region_sooner_and_noise_is_not() -> None:
    first, noise = first_region(8, -10.0)
    old_first, old_noise = first_region(0, -10.0)  # 0 = the rule before 2026-12-06
    assert noise == old_noise == 0
    assert first <= 5 and old_first >= 20  # measured: the 5th frame; never in 30 frames
    assert first_region(8, -18.0)[0] < first_region(0, -18.0)[0]  # measured: 3rd, 4th frame


def test_a_coat_only_brighter_is_not_helped() -> None:
    assert first_region(8, 10.0) == first_region(0, 10.0)


def test_edge_cluster_is_checked() -> None:
    with pytest.raises(ValueError, match="edge_cluster"):
        DetectorParams(edge_cluster=-1)
