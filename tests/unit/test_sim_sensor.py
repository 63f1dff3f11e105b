"""The simulator's sensor model and H.264 round trip (issue 18): noise where real cameras have it.

Noise is measured as the detector gets it: the 320-wide luma of a 640x360 render (the detection
bench's size), after the H.264 round trip when the scene records through one, as the per-pixel
standard deviation over frames of a still stretch (no actor, no wind), root-mean-squared over
the pixels.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agent.camera.sim import SimCamera, get_scene
from agent.camera.sim.codec import CodecRoundTrip, scaled_kbps
from agent.camera.sim.render import SceneRenderer
from agent.camera.sim.scene import Lighting, Scene
from agent.camera.sim.sensor import DEVICE_KBPS_720P, Sensor, doorbell_sensor
from agent.errors import CameraError


def temporal_noise(cam: SimCamera, first: int = 12, n: int = 30) -> float:
    with cam:
        frames = itertools.islice(cam.frames(), first, first + n)
        stack = np.stack([f.luma.astype(np.float32) for f in frames])
    return float(np.sqrt(stack.var(axis=0, ddof=1).mean()))


def bench_camera(scene: Scene, seed: int = 0, **kwargs: float) -> SimCamera:
    return SimCamera(scene, width=640, height=360, luma_width=320, seed=seed, **kwargs)


@pytest.mark.parametrize(
    ("name", "low", "high"), [("dusk_visit", 4.8, 7.2), ("ir_night_visit", 5.8, 8.4)]
)
def test_dark_scenes_have_the_noise_the_issue_measured(name: str, low: float, high: float) -> None:
    levels = []
    for seed in (0, 1):
        scene = get_scene(name, seed=seed)
        assert min(e.start for e in scene.events) > 3.0  # the measured stretch is empty
        levels.append(temporal_noise(bench_camera(scene, seed)))
    assert all(low <= x <= high for x in levels), levels
    assert levels[0] != levels[1]  # seeds vary the noise level


def test_daylight_noise_is_mild_on_both_sensors() -> None:
    for sensor in (Sensor(), doorbell_sensor()):
        day = Scene("day", "an empty porch by day", 4.0, sensor=sensor)
        assert 1.4 <= temporal_noise(bench_camera(day)) <= 3.0


def test_noise_rises_as_the_light_falls_and_follows_the_signal() -> None:
    s = doorbell_sensor()
    assert s.gain(1.0, False) == 1.0
    assert 1.0 < s.gain(0.8, False) < s.gain(0.6, False) < s.gain(0.45, False) <= s.gain_max
    assert s.gain(1.0, True) == s.ir_gain > 1.0
    assert s.sigma(200.0, 1.0) > s.sigma(50.0, 1.0) > s.sigma(16.0, 1.0) == s.read_dn  # shot
    bright = Scene("b", "bright", 4.0, sensor=s)
    dim = Scene("d", "dim", 4.0, lighting=Lighting(ambient=((0.0, 0.6),)), sensor=s)
    clean = {"codec_kbps": 0.0}
    assert temporal_noise(bench_camera(dim, **clean)) > 1.8 * temporal_noise(
        bench_camera(bright, **clean)
    )


def test_row_noise_and_fixed_pattern_are_there() -> None:
    sensor = Sensor(shot=0.0, read_dn=0.0, row_dn=3.0, fpn_dn=0.0)
    r = SceneRenderer(Scene("rows", "row noise only", 4.0, sensor=sensor), width=320, height=180)
    a = r.render(1.0, 15)[0][:180].astype(np.float32)
    b = r.render(1.0, 16)[0][:180].astype(np.float32)
    d = a - b
    # Whole rows move together: the variance is between rows, almost none within a row.
    assert d.mean(axis=1).std() > 3.0
    assert float(np.median(d.std(axis=1))) < 1.0
    fixed = Sensor(shot=0.0, read_dn=0.0, row_dn=0.0, fpn_dn=2.0)
    r = SceneRenderer(Scene("fpn", "fixed pattern only", 4.0, sensor=fixed), width=320, height=180)
    still = SceneRenderer(
        Scene("fpn", "none", 4.0, sensor=Sensor(0, 0, row_dn=0, fpn_dn=0)), width=320, height=180
    )
    a, b = r.render(1.0, 15)[0][:180], r.render(1.0, 16)[0][:180]
    assert np.array_equal(a, b)  # fixed: it does not change between frames
    assert np.abs(a.astype(int) - still.render(1.0, 15)[0][:180]).mean() > 1.0


def test_codec_round_trip_is_lossy_deterministic_and_scene_chosen() -> None:
    assert scaled_kbps(DEVICE_KBPS_720P, 640, 360) == DEVICE_KBPS_720P / 4
    dusk = get_scene("dusk_visit", seed=3)
    assert dusk.sensor.codec_kbps_720p == DEVICE_KBPS_720P
    cam = bench_camera(dusk)
    assert cam.codec_kbps == pytest.approx(500.0)
    assert bench_camera(dusk, codec_kbps=0.0).codec_kbps is None
    assert bench_camera(get_scene("visit")).codec_kbps is None  # older scenes stay clean
    with pytest.raises(CameraError, match="codec_kbps"):
        bench_camera(dusk, codec_kbps=-1.0)

    def frames(kbps: float) -> list[np.ndarray]:
        with bench_camera(dusk, codec_kbps=kbps) as c:
            return [f.main.copy() for f in itertools.islice(c.frames(), 20)]

    coded, again, raw = frames(500.0), frames(500.0), frames(0.0)
    assert all(np.array_equal(a, b) for a, b in zip(coded, again, strict=True))
    err = [np.abs(a.astype(int) - b).mean() for a, b in zip(coded, raw, strict=True)]
    assert min(err) > 1.0  # at this bitrate the encoder cannot keep the noise
    rt = CodecRoundTrip(64, 64, 15.0, 50.0)
    flat = np.full((96, 64), 100, np.uint8)
    rt.apply(flat)
    assert abs(float(flat.mean()) - 100.0) < 2.0
    with pytest.raises(CameraError, match="positive bitrate"):
        CodecRoundTrip(64, 64, 15.0, 0.0)
