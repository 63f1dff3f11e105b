"""Dusk (issue 18): a dim visitor is seen at once where the noise floor is known low, nothing
but noise is seen there, and ``lit_raw`` counts leaves the floor has learnt."""

from __future__ import annotations

import numpy as np
import pytest

from motion import DetectorParams, MotionDetector
from tests.unit.test_detector import FPS, background, run, still
from tests.unit.test_detector_floor import shimmer

NOISE = 10.0  # grey levels per pixel at 320x180: ~1.4 in the blurred working image, so the
# thresholds are 7 grey levels (noise_k) and 6 (detect_k, at the minimum), as at dusk


@pytest.fixture
def bg() -> np.ndarray:
    return background()


def dim_walk(bg: np.ndarray, rng: np.random.Generator, n: int = 45) -> list[np.ndarray]:
    """A small person-sized box (16x48 of 320x180), 20 grey levels darker than what it covers
    (texture kept), crossing the frame in ``n`` frames on noise of ``NOISE``."""
    w = bg.shape[1]
    out = []
    for i in range(n):
        img = bg.copy()
        x = int(-16 + (w + 16) * i / (n - 1))
        img[60:108, max(x, 0) : max(x + 16, 0)] -= 20.0
        img += rng.normal(0.0, NOISE, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def seen(params: DetectorParams, bg: np.ndarray) -> tuple[int, int]:
    """(motion frames while the dim box crosses, motion frames on noise alone afterwards)."""
    rng = np.random.default_rng(5)
    det = MotionDetector(params)
    run(det, still(bg, 120, rng, noise=NOISE))
    crossing = run(det, iter(dim_walk(bg, rng)), 120 / FPS)
    quiet = run(det, still(bg, 300, rng, noise=NOISE), 165 / FPS)
    return sum(r.motion for r in crossing), sum(r.motion for r in quiet)


def test_a_dim_visitor_is_seen_where_the_floor_is_known_low_and_noise_is_not(
    bg: np.ndarray,
) -> None:
    low, noise_low = seen(DetectorParams(), bg)
    high, noise_high = seen(DetectorParams(detect_k=0.0), bg)
    assert noise_low == noise_high == 0
    assert low >= 0.8 * 45 and low >= high + 10  # detect_k 0 (the old rule): 25 of 45


def test_lit_raw_counts_leaves_the_floor_has_learnt(bg: np.ndarray) -> None:
    # The floor hides shimmering leaves from motion, but they still changed brightness: with
    # ``lit_raw`` ``lit`` counts them, so the event rules that weigh motion against light see the
    # gust. (Off by default: see DetectorParams.lit_raw.)
    rng = np.random.default_rng(21)
    det = MotionDetector(DetectorParams(lit_raw=True))
    results = run(det, iter(shimmer(bg, rng, 30 * int(FPS))))
    lit = float(np.mean([r.lit for r in results[-150:]]))
    assert not any(r.motion for r in results[-150:])
    assert lit > 0.002
    old = MotionDetector()
    rng = np.random.default_rng(21)
    above_floor = run(old, iter(shimmer(bg, rng, 30 * int(FPS))))[-150:]
    assert float(np.mean([r.lit for r in above_floor])) < lit / 2  # what main counted
