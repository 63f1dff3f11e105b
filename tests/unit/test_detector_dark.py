"""Dusk (issue 18): a dark, nearly uniform coat on a dark lawn is confirmed by ``dark_confirm``
as it walks in, where the structure test alone takes it for a shadow; noise stays no motion,
and a coat brighter than the lawn is not helped (light on the move brightens)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from motion import DetectorParams, MotionDetector
from tests.unit.test_detector import FPS, run, still

W, H = 320, 180
NOISE = 18.0  # grey levels per pixel at 320x180: ~2.5 in the blurred working image, as at dusk


def lawn(seed: int = 3) -> np.ndarray:
    """A dim, nearly flat lawn: 55..65 grey with faint blotches."""
    rng = np.random.default_rng(seed)
    _, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    blotch = rng.normal(0, 1, (H // 8 + 1, W // 8 + 1)).astype(np.float32)
    blotch = np.kron(blotch, np.ones((8, 8), np.float32))[:H, :W] * 4
    out: np.ndarray = (55 + 10 * xx / W + blotch).astype(np.float32)
    return out


def coat(bg: np.ndarray, rng: np.random.Generator, delta: float) -> Iterator[np.ndarray]:
    """A uniform 24x80 box ``delta`` grey levels off the lawn's mean crossing in 45 frames."""
    for i in range(45):
        img = bg.copy()
        x = int(-24 + (W + 24) * i / 44)
        box = img[50:130, max(x, 0) : max(x + 24, 0)]
        if box.size:
            box[...] = float(bg[50:130].mean()) + delta
        img += rng.normal(0.0, NOISE, img.shape).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8)


def seen(dark_confirm: float, delta: float) -> tuple[int, int, int]:
    """(motion frames while the coat crosses, index of the first, motion frames on noise after)."""
    rng = np.random.default_rng(5)
    bg = lawn()
    # dark_structure, the later rule for the same coat (test_detector_dark_region.py), is off:
    # this measures dark_confirm alone.
    det = MotionDetector(DetectorParams(dark_confirm=dark_confirm, dark_structure=0.0))
    run(det, still(bg, 120, rng, noise=NOISE))
    crossing = run(det, coat(bg, rng, delta), 120 / FPS)
    quiet = run(det, still(bg, 300, rng, noise=NOISE), 165 / FPS)
    first = next((i for i, r in enumerate(crossing) if r.motion), len(crossing))
    return sum(r.motion for r in crossing), first, sum(r.motion for r in quiet)


def test_a_dark_uniform_coat_is_seen_as_it_walks_in_and_noise_is_not() -> None:
    frames, first, noise = seen(0.45, -32.0)
    old_frames, old_first, old_noise = seen(0.0, -32.0)  # 0 = the rule before 2026-12-05
    assert noise == old_noise == 0
    assert frames >= 0.7 * 45 and first <= 4  # measured 39 frames, from the fourth
    assert old_frames <= 10 and old_first >= 20  # measured 2 frames, from the 43rd


def test_a_coat_brighter_than_the_lawn_is_not_helped() -> None:
    assert seen(0.45, 32.0)[:2] == seen(0.0, 32.0)[:2]


def test_by_day_the_rule_is_off() -> None:
    # Sensor noise of a daylight picture (~1.2 grey levels in the working image): a dark branch
    # swinging beyond its learnt reach must not pass a lower structure test.
    rng = np.random.default_rng(5)
    det = MotionDetector(DetectorParams(dark_confirm=0.45))
    run(det, still(lawn(), 60, rng, noise=8.0))
    assert not det._dark_picture()
    run(det, still(lawn(), 60, rng, noise=NOISE), 60 / FPS)
    assert det._dark_picture()


def test_dark_confirm_is_checked() -> None:
    with pytest.raises(ValueError, match="dark_confirm"):
        DetectorParams(dark_confirm=-0.1)
