"""The camera's sensor: noise that follows the light and the gain, applied to the lit picture.

A real doorbell sensor is not a clean renderer with a little white noise on top. What differs
(and what detectors tuned on clean renders trip over):

- **shot noise** grows with the signal (photon counting: variance proportional to signal x gain);
- **read noise** is there even in the dark and scales with the analogue gain;
- **auto-exposure gain** rises as the light falls: a dusk picture at half brightness has been
  amplified several times, and so has its noise; under the IR illuminator the gain is high too;
- **row noise**: each frame every sensor row gets its own small offset (horizontal banding);
- **fixed-pattern noise**: a per-pixel offset that never changes (it is not temporal, but it is
  amplified with the gain, so dark frames look "dirty").

Usage (the renderer does this for every frame, after lighting and before the luma is taken)::

    model = SensorNoise(scene.sensor, width, height, seed)
    g = scene.sensor.gain(brightness, ir)          # the AE's analogue gain at this light
    model.apply(y_plane, g, rng)                   # in place, uint8, saturating
    sigma_uv = scene.sensor.chroma_sigma(g)        # for the chroma planes

Levels are in 8-bit video-range Y (black 16) of the full-size picture. The luma image the
detector gets is that Y shrunk (2x2 area average at the usual sizes), which halves white noise;
:meth:`Sensor.luma_sigma` predicts the temporal noise there, and the unit tests measure it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

_PAD = 64  # the noise pool is this much larger than the frame each way (a random window per frame)
_BLACK = 16.0


@dataclass(frozen=True)
class Sensor:
    """Noise parameters of one camera (per scene, so scenes can model a better or worse sensor).

    ``shot``: variance (DN^2) per DN of signal above black at unity gain; ``read_dn``: read noise
    std (DN) at unity gain. Auto-exposure: at image brightness ``b`` (``Lighting.gain``, 1.0 = day)
    the analogue gain is ``(dark_light / b) ** gain_slope`` clipped to ``[1, gain_max]`` (the AE
    first lengthens the exposure, then adds gain, then gives up and the picture gets darker);
    with the IR illuminator on the gain is ``ir_gain``. ``row_dn`` and ``fpn_dn``: std of the
    per-frame row offsets and of the fixed per-pixel pattern at unity gain. ``chroma``: chroma
    noise relative to luma noise. ``codec_kbps_720p``: the bitrate (kbit/s at 1280x720, scaled by
    pixel count) whose H.264 artefacts the scene's frames carry by default (None: none; see
    :class:`agent.camera.sim.codec.CodecRoundTrip`).

    The default is a good camera (the built-in scenes before issue 18, a little noisier):
    about 1.6 grey levels of temporal noise in the detector's luma by day.
    :func:`doorbell_sensor` is a cheap one calibrated on the issue's measurements.
    """

    shot: float = 0.07
    read_dn: float = 1.5
    gain_max: float = 2.2
    dark_light: float = 0.9
    gain_slope: float = 1.5
    ir_gain: float = 2.0
    row_dn: float = 0.25
    fpn_dn: float = 0.5
    chroma: float = 0.5
    codec_kbps_720p: float | None = None

    def gain(self, brightness: float, ir: bool) -> float:
        """The analogue gain the auto-exposure runs at for this image brightness."""
        if ir:
            return self.ir_gain
        b = max(brightness, 1e-3)
        wanted: float = (self.dark_light / b) ** self.gain_slope
        return min(self.gain_max, max(1.0, wanted))

    def sigma(self, level: float, gain: float) -> float:
        """Temporal noise std (DN) of a full-size pixel at Y ``level``, without row noise."""
        s = max(0.0, level - _BLACK)
        return math.sqrt(gain * self.shot * s + (gain * self.read_dn) ** 2)

    def luma_sigma(self, level: float, gain: float, shrink: int = 2) -> float:
        """Predicted temporal std in a luma image that averages ``shrink`` x ``shrink`` pixels."""
        white = self.sigma(level, gain) / shrink
        row = gain * self.row_dn / math.sqrt(shrink)
        return math.sqrt(white**2 + row**2)

    def chroma_sigma(self, gain: float) -> float:
        """Std of the chroma noise (DN) at this gain, on a mid-grey level."""
        return self.chroma * self.sigma(100.0, gain)

    def scaled(self, factor: float) -> Sensor:
        """The same sensor with every noise source ``factor`` times stronger."""
        f2 = factor * factor
        return replace(
            self,
            shot=self.shot * f2,
            read_dn=self.read_dn * factor,
            row_dn=self.row_dn * factor,
            fpn_dn=self.fpn_dn * factor,
        )


def doorbell_sensor(rng: np.random.Generator | None = None) -> Sensor:
    """A cheap doorbell sensor: about 2 grey levels of luma noise by day, 6 at dusk (45 %
    brightness), 7 under IR; with ``rng``, every noise source is scaled by a random 0.85-1.15
    (so a detector cannot fit one noise level). Records at the device's bitrate."""
    base = Sensor(
        shot=0.12,
        read_dn=1.6,
        gain_max=10.0,
        dark_light=0.95,
        gain_slope=3.0,
        ir_gain=11.8,
        row_dn=0.35,
        fpn_dn=0.8,
        chroma=0.45,
        codec_kbps_720p=DEVICE_KBPS_720P,
    )
    if rng is None:
        return base
    return base.scaled(float(rng.uniform(0.85, 1.15)))


#: The device's recording bitrate at 1280x720, 15 fps (kbit/s); smaller renders scale it by pixels.
DEVICE_KBPS_720P = 2000.0


class SensorNoise:
    """Applies a :class:`Sensor`'s temporal and fixed noise to a Y plane; built once per renderer.

    Holds a pool of standard-normal noise a little larger than the frame (each frame takes a
    window at a random offset: no full-frame random numbers per frame) and the fixed pattern.
    About four full-frame float passes per frame (see the module's measurements in the report).
    """

    def __init__(self, sensor: Sensor, width: int, height: int, seed: int) -> None:
        self.sensor = sensor
        rng = np.random.default_rng([seed, 40, width])
        self._pool = rng.standard_normal((height + _PAD, width + _PAD), dtype=np.float32)
        self._fpn = rng.standard_normal((height, width), dtype=np.float32)
        self._levels = np.maximum(np.arange(256, dtype=np.float32) - _BLACK, 0.0)
        self._sig = np.empty((height, width), np.float32)
        self._lut_gain: float | None = None
        self._lut = np.empty((1, 256), np.float32)

    def _sigma_lut(self, gain: float) -> np.ndarray:
        if gain != self._lut_gain:
            s = self.sensor
            var = gain * s.shot * self._levels + (gain * s.read_dn) ** 2
            self._lut[0] = np.sqrt(var)
            self._lut_gain = gain
        return self._lut

    def apply(self, y: np.ndarray, gain: float, rng: np.random.Generator) -> None:
        """Add this frame's noise to ``y`` (uint8, in place, rounded and saturated)."""
        h, w = y.shape
        s = self.sensor
        oy, ox = (int(v) for v in rng.integers(0, _PAD, 2))
        sig = self._sig
        cv2.LUT(y, self._sigma_lut(gain), dst=sig)  # per-pixel std from the signal level
        cv2.multiply(sig, self._pool[oy : oy + h, ox : ox + w], dst=sig)
        if s.fpn_dn:
            cv2.scaleAdd(self._fpn, gain * s.fpn_dn, sig, dst=sig)
        if s.row_dn:
            rows = rng.standard_normal((h, 1), dtype=np.float32)
            rows *= np.float32(gain * s.row_dn)
            sig += rows
        cv2.add(y, sig, dst=y, dtype=cv2.CV_8U)
