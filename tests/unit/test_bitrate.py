"""``[recording] bitrate_kbps`` caps libx264's bit rate (VBV over CRF); small frames: fast."""

from __future__ import annotations

import numpy as np
import pytest

from agent.app import build_encoder
from agent.camera.sim import SimCamera, get_scene
from agent.config import parse_config
from agent.errors import ConfigError
from agent.recording.encoder import X264Encoder

W, H, FPS, N = 320, 240, 15.0, 60  # 4 s of video


def _noise_frames() -> list[np.ndarray]:
    """Fresh noise every frame: incompressible, so CRF alone spends far more than any cap."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (H * 3 // 2, W), dtype=np.uint8) for _ in range(N)]


def _kbit_s(enc: X264Encoder, frames: list[np.ndarray]) -> float:
    size = sum(p.size for i, f in enumerate(frames) for p in enc.encode(f, i / FPS))
    size += sum(p.size for p in enc.flush())
    return size * 8 / (len(frames) / FPS) / 1000


def test_bitrate_cap_holds_x264_to_it() -> None:
    frames = _noise_frames()
    free = _kbit_s(X264Encoder(W, H, FPS), frames)
    capped = _kbit_s(X264Encoder(W, H, FPS, bitrate_kbps=400), frames)
    assert free > 4000  # CRF alone on noise
    # VBV: at most maxrate per second plus what the 1 s buffer held at the start
    assert capped <= 400 * (1 + 1 / (N / FPS)) * 1.05


def test_build_encoder_passes_the_configured_cap_to_x264() -> None:
    sim = SimCamera(get_scene("porch"), width=W, height=H, fps=FPS)
    enc = build_encoder(parse_config("[recording]\nbitrate_kbps = 400\n"), sim)
    assert isinstance(enc, X264Encoder)
    assert _kbit_s(enc, _noise_frames()) <= 400 * 1.25 * 1.05


def test_default_config_caps_under_two_megabits() -> None:
    # with x264's 1 s buffer a 20 s clip stays under 2 Mbit/s: 1900 * (20 + 0.9) / 20 < 2000
    assert parse_config("").recording.bitrate_kbps * (20 + 0.9) / 20 < 2000


def test_x264_refusal_names_the_settings() -> None:
    with pytest.raises(ConfigError, match="bitrate_kbps=-5"):
        X264Encoder(W, H, FPS, bitrate_kbps=-5)
