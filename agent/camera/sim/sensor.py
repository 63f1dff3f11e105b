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

_BAND_ROWS = 180  # SensorNoise.apply works on this many rows at a time (a quarter of 720p)
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
    per-frame row offsets (in the dark; they follow the signal as the rest does) and of the fixed
    per-pixel pattern at unity gain. ``chroma``: chroma
    noise relative to luma noise. ``blotch``: the share of the temporal noise variance that is
    spatially correlated (grain of about 1.5 pixels at 640x360, scaled with the size), as a cheap
    ISP's demosaicing and denoising leave it: it survives blurring and shrinking, so a detector
    sees blobs, not salt and pepper. ``codec_kbps_720p``: the bitrate (kbit/s at 1280x720, scaled by
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
    fpn_dn: float = 0.3
    chroma: float = 0.5
    blotch: float = 0.0
    codec_kbps_720p: float | None = None

    def gain(self, brightness: float, ir: bool) -> float:
        """The analogue gain the auto-exposure runs at for this image brightness."""
        if ir:
            return self.ir_gain
        b = max(brightness, 1e-3)
        wanted: float = (self.dark_light / b) ** self.gain_slope
        return min(self.gain_max, max(1.0, wanted))

    def sigma(self, level: float, gain: float) -> float:
        """Temporal noise std (DN) of a full-size pixel at Y ``level`` (row noise included)."""
        s = max(0.0, level - _BLACK)
        return math.sqrt(gain * self.shot * s + (gain * self.read_dn) ** 2)

    def row_share(self) -> float:
        """The part of the noise std that is one offset per row: ``row_dn / read_dn`` (at most
        0.95), so that in the dark the rows carry ``gain * row_dn``."""
        if self.read_dn <= 0:
            return 0.0
        return min(0.95, self.row_dn / self.read_dn)

    def luma_sigma(self, level: float, gain: float, shrink: int = 2) -> float:
        """Predicted temporal std in a luma image that averages ``shrink`` x ``shrink`` pixels."""
        sd, rho, b = self.sigma(level, gain), self.row_share(), self.blotch
        white = sd * math.sqrt(max(0.0, 1.0 - rho * rho - b)) / shrink
        row = sd * rho / math.sqrt(shrink)
        blotchy = sd * math.sqrt(b) * 0.95  # a 1.5-pixel grain loses little to a 2x2 average
        return math.sqrt(white**2 + row**2 + blotchy**2)

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
    """A cheap doorbell sensor that records at the device's bitrate.

    Calibrated in the detector's luma after the H.264 round trip (640x360 render, 320-wide luma):
    about 2 grey levels of temporal noise by day, 6 at dusk (45 % brightness), 7 under IR; half
    of its noise variance is blotchy (see ``blotch``), as a cheap ISP leaves it. With ``rng``,
    every noise source is scaled by a random 0.85-1.15, so a detector cannot fit one level.
    """
    base = Sensor(
        shot=0.04,
        read_dn=0.92,
        gain_max=12.0,
        dark_light=1.0,
        gain_slope=3.0,
        ir_gain=12.2,
        row_dn=0.2,
        fpn_dn=0.2,
        chroma=0.7,
        blotch=0.5,
        codec_kbps_720p=DEVICE_KBPS_720P,
    )
    if rng is None:
        return base
    return base.scaled(float(rng.uniform(0.85, 1.15)))


#: The device's recording bitrate at 1280x720, 15 fps (kbit/s); smaller renders scale it by pixels.
DEVICE_KBPS_720P = 2000.0


class SensorNoise:
    """Applies a :class:`Sensor`'s temporal and fixed noise to a Y plane; built once per renderer.

    All in uint8 with saturating OpenCV arithmetic (nine passes over a band of rows at a time,
    about 0.1 ms at 640x360 and 0.5 ms at 1280x720; float32 took three times as long and as much
    memory). The
    temporal noise is a pool of standard-normal values a little larger than the frame, stored as
    magnitudes times 32 in a positive and a negative half; each frame takes a window at a random
    offset (no full-frame random numbers per frame), scales it by the per-pixel std looked up from
    the signal (``cv2.LUT``, std times 8) and adds one half and subtracts the other. Row noise is
    part of the pool (a per-row component, so a new window gives new row offsets), which makes it
    follow the signal like the rest: a simplification (on a sensor it is read noise).
    """

    def __init__(self, sensor: Sensor, width: int, height: int, seed: int) -> None:
        self.sensor = sensor
        rng = np.random.default_rng([seed, 40, width])
        rho = sensor.row_share()
        rows = np.random.default_rng([seed, 41, width]).standard_normal(height + _PAD)
        blotches = _blotches(sensor.blotch, height + _PAD, width + _PAD, width, seed)
        self._pos, self._neg = _normal_halves(
            rng, height + _PAD, width + _PAD, rows * rho, rho, blotches, sensor.blotch
        )
        del blotches
        self._fpn_pos, self._fpn_neg = _normal_halves(rng, height, width, None, 0.0, None, 0.0)
        # Scratch for a band of rows: the steps are per pixel, so bands give the same pixels, and
        # two full-frame scratch planes were 1.8 MB of the daemon's RSS at 720p.
        self._band = min(height, _BAND_ROWS)
        self._sig = np.empty((self._band, width), np.uint8)
        self._a = np.empty((self._band, width), np.uint8)
        self._levels = np.maximum(np.arange(256, dtype=np.float32) - _BLACK, 0.0)
        self._lut_gain: float | None = None
        self._lut = np.empty((1, 256), np.uint8)

    def _sigma_lut(self, gain: float) -> np.ndarray:
        if gain != self._lut_gain:
            s = self.sensor
            var = gain * s.shot * self._levels + (gain * s.read_dn) ** 2
            self._lut[0] = np.clip(np.round(8.0 * np.sqrt(var)), 0, 255).astype(np.uint8)
            self._lut_gain = gain
        return self._lut

    def apply(self, y: np.ndarray, gain: float, rng: np.random.Generator) -> None:
        """Add this frame's noise to ``y`` (uint8, in place, saturating)."""
        h, w = y.shape
        oy, ox = (int(v) for v in rng.integers(0, _PAD, 2))
        lut = self._sigma_lut(gain)
        k = 8.0 * gain * self.sensor.fpn_dn
        for r0 in range(0, h, self._band):
            r1 = min(h, r0 + self._band)
            yb, sig, a = y[r0:r1], self._sig[: r1 - r0], self._a[: r1 - r0]
            cv2.LUT(yb, lut, dst=sig)  # per-pixel std (x8) from the signal level
            # |n| * 32 * std * 8 / 256 = |n| * std, rounded and saturated
            cv2.multiply(self._pos[oy + r0 : oy + r1, ox : ox + w], sig, dst=a, scale=1 / 256)
            cv2.multiply(self._neg[oy + r0 : oy + r1, ox : ox + w], sig, dst=sig, scale=1 / 256)
            cv2.add(yb, a, dst=yb)
            cv2.subtract(yb, sig, dst=yb)
            if k >= 0.5:
                cv2.multiply(self._fpn_pos[r0:r1], (k, 0.0, 0.0, 0.0), dst=a, scale=1 / 256)
                cv2.add(yb, a, dst=yb)
                cv2.multiply(self._fpn_neg[r0:r1], (k, 0.0, 0.0, 0.0), dst=a, scale=1 / 256)
                cv2.subtract(yb, a, dst=yb)


def _blotches(share: float, h: int, w: int, width: int, seed: int) -> np.ndarray | None:
    """Unit-variance, spatially correlated noise ``(h, w)`` (None when ``share`` is 0)."""
    if share <= 0:
        return None
    field = np.random.default_rng([seed, 42, width]).standard_normal((h, w), dtype=np.float32)
    sigma = 1.5 * width / 640
    cv2.GaussianBlur(field, (0, 0), sigma, dst=field)
    field *= np.float32(1.0 / max(1e-6, float(field.std())))
    return field


def _normal_halves(
    rng: np.random.Generator,
    h: int,
    w: int,
    rows: np.ndarray | None,
    rho: float,
    blotches: np.ndarray | None,
    blotch: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``(h, w)`` standard-normal values as uint8 magnitudes times 32: (positive part, negative
    part). ``rows`` (std ``rho``) are added per row and ``blotches`` with variance share
    ``blotch``, the white rest scaled to keep unit variance. Made 64 rows at a time, so the float
    temporaries stay small (the daemon's peak RSS counts them)."""
    pos, neg = np.empty((h, w), np.uint8), np.empty((h, w), np.uint8)
    rest = max(0.0, 1.0 - rho * rho - (blotch if blotches is not None else 0.0))
    keep = np.float32(32.0 * math.sqrt(rest))
    for r0 in range(0, h, 64):
        r1 = min(h, r0 + 64)
        n = rng.standard_normal((r1 - r0, w), dtype=np.float32)
        n *= keep
        if rows is not None:
            n += (32.0 * rows[r0:r1, None]).astype(np.float32)
        if blotches is not None:
            n += np.float32(32.0 * math.sqrt(blotch)) * blotches[r0:r1]
        np.rint(n, out=n)
        pos[r0:r1] = np.clip(n, 0, 255)
        neg[r0:r1] = np.clip(-n, 0, 255)
    return pos, neg
