"""Zones and privacy masks: polygon validation, rasterising, blacking out I420 frames."""

from __future__ import annotations

import numpy as np
import pytest

from motion import PrivacyMasker, apply_privacy_mask_i420, polygon_mask, validate_polygon

LEFT_HALF = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))


def test_validate_polygon_accepts_lists_and_returns_tuples() -> None:
    assert validate_polygon([[0, 0], [1, 0], [0.5, 1]]) == ((0.0, 0.0), (1.0, 0.0), (0.5, 1.0))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(0, 0), (1, 0)], "at least 3 points"),
        ([(0, 0), (1.5, 0), (0, 1)], r"point 1 is \(1.5, 0.0\)"),
        ([(0, 0), (1, 0), (0, -0.1)], "point 2"),
        ([(0, 0), (1, 0), (0,)], "point 2"),
        ([(0, 0), (1, 0), ("a", 1)], "point 2"),
    ],
)
def test_validate_polygon_names_the_bad_point(
    points: list[tuple[object, ...]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_polygon(points)  # type: ignore[arg-type]


def test_polygon_mask_covers_the_polygon() -> None:
    m = polygon_mask([LEFT_HALF], 100, 50)
    assert m.shape == (50, 100) and m.dtype == bool
    assert m[:, :49].all() and not m[:, 51:].any()
    assert polygon_mask([], 10, 10).sum() == 0
    full = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert polygon_mask([full], 64, 36).all()


def test_polygon_mask_unions_polygons() -> None:
    tri = ((0.9, 0.9), (1.0, 0.9), (1.0, 1.0))
    m = polygon_mask([LEFT_HALF, tri], 100, 100)
    assert m[10, 10] and m[98, 98] and not m[10, 90]


def i420(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h * 3 // 2, w), dtype=np.uint8)


def test_privacy_mask_blanks_luma_and_chroma_in_place() -> None:
    w, h = 64, 36
    frame = i420(w, h)
    before = frame.copy()
    mask = polygon_mask([LEFT_HALF], w, h)
    apply_privacy_mask_i420(frame, mask)
    y = frame[:h]
    u = frame.reshape(-1)[w * h : w * h + w * h // 4].reshape(h // 2, w // 2)
    v = frame.reshape(-1)[w * h + w * h // 4 :].reshape(h // 2, w // 2)
    assert (y[:, :32] == 16).all()
    assert (y[:, 33:] == before[:h, 33:]).all()  # the boundary column may be masked
    assert (u[:, :16] == 128).all() and (v[:, :16] == 128).all()
    bu = before.reshape(-1)[w * h : w * h + w * h // 4].reshape(h // 2, w // 2)
    assert (u[:, 17:] == bu[:, 17:]).all()


def test_privacy_masker_matches_function_and_checks_size() -> None:
    w, h = 64, 36
    poly = ((0.1, 0.1), (0.6, 0.2), (0.3, 0.9))
    a, b = i420(w, h, 1), i420(w, h, 1)
    apply_privacy_mask_i420(a, polygon_mask([poly], w, h))
    masker = PrivacyMasker([poly], w, h)
    masker(b)
    assert (a == b).all()
    assert (a != i420(w, h, 1)).any()
    # A chroma sample is blanked when any of its four luma pixels is masked.
    m = masker.mask
    chroma = m.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
    u = b.reshape(-1)[w * h : w * h + w * h // 4].reshape(h // 2, w // 2)
    assert (u[chroma] == 128).all()
    with pytest.raises(ValueError, match="built for 64x36"):
        masker(i420(32, 18))


def test_empty_masker_leaves_frame_alone_and_bad_frames_are_rejected() -> None:
    frame = i420(32, 18)
    before = frame.copy()
    PrivacyMasker([], 32, 18)(frame)
    assert (frame == before).all()
    with pytest.raises(ValueError, match="I420"):
        apply_privacy_mask_i420(np.zeros((10, 32), np.uint8), np.zeros((6, 32), bool))
    with pytest.raises(ValueError, match="does not match"):
        apply_privacy_mask_i420(i420(32, 18), np.zeros((10, 10), bool))
