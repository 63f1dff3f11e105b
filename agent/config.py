"""Doorward's configuration: TOML in, a frozen, validated :class:`Config` out.

The defaults live here, in code, so an installed package works without any file;
``config/doorward.toml`` is the same defaults, annotated for owners (a test keeps the two equal).
Keys carry their unit in the name (``pre_roll_s``, ``max_bytes``). A bad value raises
:class:`~agent.errors.ConfigError` quoting the key, the value and what is allowed; unknown keys are
errors too, since a typo silently ignored is a setting lost.

Usage::

    cfg = load_config(Path("/etc/doorward/doorward.toml"))   # or load_config(None) for the defaults
    cfg.recording.pre_roll_s
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, DoorwardError

#: The installed configuration (scripts/install-pi writes it); used when present and no
#: --config or $DOORWARD_CONFIG names another.
SYSTEM_CONFIG = Path("/etc/doorward/doorward.toml")

Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CameraConfig:
    source: str = "sim:porch"
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    luma_width: int = 320
    # Pi camera only (libcamera): 0 or 180 degrees, flips, a tuning file (NoIR modules:
    # "imx219_noir.json", "imx708_noir.json"), AeExposureMode; the IR LED's light levels (lux as
    # the camera's metadata reports them, with a gap so the LED does not flicker at dusk).
    rotation: int = 0
    hflip: bool = False
    vflip: bool = False
    tuning_file: str = ""
    exposure_mode: str = "normal"
    ir_on_below_lux: float = 5.0
    ir_off_above_lux: float = 20.0


@dataclass(frozen=True)
class MotionConfig:
    zones: tuple[Polygon, ...] = ()
    privacy_masks: tuple[Polygon, ...] = ()
    # Extra detector tuning, passed to motion.DetectorParams by name (checked there).
    tuning: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventsConfig:
    min_motion_s: float = 0.4
    gap_s: float = 0.1
    fast_motion_s: float = 0.13
    post_roll_s: float = 5.0
    max_clip_s: float = 120.0


@dataclass(frozen=True)
class RecordingConfig:
    pre_roll_s: float = 3.0
    gop_s: float = 1.0
    preset: str = "ultrafast"
    crf: int = 23
    snapshot_quality: int = 85
    encoder: str = "auto"
    # Cap on the clip's bit rate (x264's VBV maxrate; the hardware encoder's target): a 720p15
    # doorbell clip fits in 2 Mbit/s with mean SSIM >= 0.98 (BENCHMARKS.md, issue 19); 1900, not
    # 2000: x264's 1 s VBV buffer lets a clip overshoot the cap by up to 0.9 s of it (+1.2 % on
    # the 40 s visit).
    bitrate_kbps: int = 1900


@dataclass(frozen=True)
class StoreConfig:
    data_dir: str = ""
    max_bytes: int = 2_000_000_000
    retention_days: float = 30.0
    min_free_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class MqttConfig:
    url: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    allow_plain: bool = False
    # A broker login (the Mosquitto add-on's set-up): the password is read from the file at start
    # (agent.app.read_password), never from this file, and never logged.
    username: str = ""
    password_file: str = ""


@dataclass(frozen=True)
class S3Config:
    bucket: str = ""
    endpoint_url: str = ""
    prefix: str = "doorward"
    region: str = "us-east-1"
    addressing_style: str = "auto"
    credentials_file: str = ""
    multipart_threshold_bytes: int = 8 * 1024 * 1024
    part_size_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class UplinkConfig:
    drain_timeout_s: float = 60.0
    # While a clip is recorded under `clips` consent, its sealed stream goes up in segments this
    # often, so a device destroyed mid-event has already sent all but the last seconds; 0: off.
    live_segment_s: float = 2.0


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = ""
    ring_pin: int = 17
    setup_pin: int = 27
    led_pin: int = 22
    ir_led_pin: int = -1  # -1: no IR LED


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = CameraConfig()
    motion: MotionConfig = MotionConfig()
    events: EventsConfig = EventsConfig()
    recording: RecordingConfig = RecordingConfig()
    store: StoreConfig = StoreConfig()
    mqtt: MqttConfig = MqttConfig()
    s3: S3Config = S3Config()
    uplink: UplinkConfig = UplinkConfig()
    gpio: GpioConfig = GpioConfig()
    log: LogConfig = LogConfig()
    path: str | None = None

    def data_dir(self, override: str | None = None) -> Path:
        """Where clips and keys live: ``--data-dir``, else ``[store] data_dir``, else systemd's
        ``$STATE_DIRECTORY``, else ``$XDG_DATA_HOME/doorward`` (``~/.local/share/doorward``)."""
        for candidate in (override, self.store.data_dir, os.environ.get("STATE_DIRECTORY", "")):
            if candidate:
                return Path(candidate).expanduser().resolve()
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "doorward"


# ---- validation -------------------------------------------------------------------------------
#
# Each section is a table: key -> rule. A rule takes the TOML value and returns the Python value,
# or raises _Bad saying what is allowed. Adding a key = a field on the section's dataclass (with
# its default) + one line in _RULES below + the annotated default in config/doorward.toml.
# Checks that involve several keys go in _CROSS_CHECKS. Every problem of a file is collected and
# reported together, each naming the file and the key.

Rule = Callable[[Any], Any]


class _Bad(ValueError):
    """One value that is not allowed; ``where`` refines the key (``[0]``), ``shown`` the value."""

    def __init__(self, allowed: str, *, where: str = "", shown: Any = None) -> None:
        super().__init__(allowed)
        self.allowed, self.where, self.shown = allowed, where, shown


def number(lo: float, hi: float, what: str) -> Rule:
    def rule(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise _Bad(f"must be a number from {lo:g} to {hi:g} ({what})")
        return float(v)
    return rule


def integer(lo: int, hi: int, what: str, *, even: bool = False) -> Rule:
    def rule(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _Bad(f"must be an integer from {lo:g} to {hi:g} ({what})")
        if even and v % 2:
            raise _Bad("must be even (YUV 4:2:0 halves it)")
        return v
    return rule


def choice(*allowed: Any, why: str = "") -> Rule:
    def rule(v: Any) -> Any:
        if isinstance(v, bool) or v not in allowed:
            raise _Bad(f"must be one of {', '.join(str(a) for a in allowed)}"
                       + (f" ({why})" if why else ""))
        return v
    return rule


def text(what: str) -> Rule:
    def rule(v: Any) -> str:
        if not isinstance(v, str):
            raise _Bad(f"must be a string ({what})")
        return v
    return rule


def url(*schemes: str, what: str) -> Rule:
    def rule(v: Any) -> str:
        if not isinstance(v, str) or (v and not v.startswith(schemes)):
            raise _Bad(f"must be {what}")
        return v
    return rule


def matching(pattern: str, what: str) -> Rule:
    def rule(v: Any) -> str:
        if not isinstance(v, str) or not re.fullmatch(pattern, v):
            raise _Bad(f"must be {what}")
        return v
    return rule


def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("must be true or false")
    return v


def polygons(v: Any) -> tuple[Polygon, ...]:
    allowed = ("must be a list of polygons, each a list of at least 3 [x, y] points with "
               "0 <= x, y <= 1")
    if not isinstance(v, list):
        raise _Bad(allowed)
    polys: list[Polygon] = []
    for i, poly in enumerate(v):
        if not isinstance(poly, list) or len(poly) < 3:
            raise _Bad(allowed, where=f"[{i}]", shown=poly)
        points = []
        for p in poly:
            good = isinstance(p, list) and len(p) == 2
            good = good and all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)
            if not good or not all(0.0 <= c <= 1.0 for c in p):
                raise _Bad(f"has point {p!r}: {allowed}", where=f"[{i}]", shown=poly)
            points.append((float(p[0]), float(p[1])))
        polys.append(tuple(points))
    return tuple(polys)


def _source(v: Any) -> str:
    from agent.camera.sources import parse_source

    if not isinstance(v, str) or not v:
        raise _Bad("must be a source such as 'sim:porch', 'file:PATH', 'v4l2:/dev/video0' or "
                   "'picamera2'")
    try:
        parse_source(v)
    except DoorwardError as exc:
        raise _Bad(f"is not understood: {str(exc).split(': ', 1)[-1]}") from exc
    return v


def _rotation(v: Any) -> int:
    if v in (90, 270) and not isinstance(v, bool):
        raise _Bad("must be 0 or 180: the Pi camera can only flip the image (libcamera's "
                   "Transform), not turn it by a quarter; mount the camera upright or upside "
                   "down, or set hflip/vflip")
    return int(choice(0, 180, why="degrees")(v))


_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
_PIN = integer(0, 27, "BCM GPIO number")

# Sections that are gone, and what replaced them (issue 19).
_REMOVED = {
    "homeassistant": "config section [homeassistant] was removed: the device no longer publishes "
                     "Home Assistant discovery (nor clear event content). Home Assistant now gets "
                     "the doorbell through `doorward owner bridge` on the owner's side (README, "
                     "\"Home Assistant\"); delete the section from this file",
}

_RULES: dict[str, tuple[type, dict[str, Rule]]] = {
    "camera": (CameraConfig, {
        "source": _source,
        "width": integer(64, 4096, "pixels, even", even=True),
        "height": integer(64, 4096, "pixels, even", even=True),
        "fps": number(1, 60, "frames per second"),
        "luma_width": integer(64, 1280, "pixels"),
        "rotation": _rotation,
        "hflip": flag,
        "vflip": flag,
        "tuning_file": text("a libcamera tuning file name such as 'imx219_noir.json', or a path; "
                            "empty for the sensor's default"),
        "exposure_mode": choice("normal", "short", "long", why="libcamera AeExposureMode"),
        "ir_on_below_lux": number(0, 100_000, "the IR LED turns on below this light level"),
        "ir_off_above_lux": number(0, 100_000, "the IR LED turns off above this light level"),
    }),
    "motion": (MotionConfig, {
        "zones": polygons,
        "privacy_masks": polygons,
    }),
    "events": (EventsConfig, {
        "min_motion_s": number(0, 10, "seconds"),
        "gap_s": number(0, 1, "seconds"),
        "fast_motion_s": number(0, 10, "seconds; 0 turns the short path off"),
        "post_roll_s": number(0, 60, "seconds"),
        "max_clip_s": number(5, 3600, "seconds"),
    }),
    "recording": (RecordingConfig, {
        "pre_roll_s": number(0, 30, "seconds"),
        "gop_s": number(0.1, 1.0, "seconds between keyframes; at most 1 so pre-roll stays "
                        "precise"),
        "preset": choice(*_PRESETS),
        "crf": integer(0, 51, "x264 quality, lower is better"),
        "snapshot_quality": integer(10, 100, "JPEG quality"),
        "encoder": choice("auto", "hardware", "software"),
        "bitrate_kbps": integer(100, 50_000, "kbit/s, the clip's bit-rate cap"),
    }),
    "store": (StoreConfig, {
        "data_dir": text("a path, empty for the default"),
        "max_bytes": integer(10_000_000, 2**50, "bytes of clips kept"),
        "retention_days": number(0.01, 3650, "days a clip is kept"),
        "min_free_bytes": integer(0, 2**50, "bytes kept free on the data dir's file system, "
                                  "evicting clips; 0 turns the floor off"),
    }),
    "mqtt": (MqttConfig, {
        "url": url("mqtt://", "mqtts://", what="mqtt://host:port or mqtts://host:port, empty "
                   "for no broker"),
        "ca_file": text("a path"),
        "cert_file": text("a path"),
        "key_file": text("a path"),
        "allow_plain": flag,
        "username": text("the broker login; empty: the device id, for certificate brokers"),
        "password_file": text("a path; ${CREDENTIALS_DIRECTORY} is expanded"),
    }),
    "s3": (S3Config, {
        "bucket": text("a bucket name, empty for no uploads"),
        "endpoint_url": url("http://", "https://", what="http(s)://host[:port], or empty for "
                            "AWS"),
        "prefix": text("a key prefix"),
        "region": text("a region name"),
        "addressing_style": choice("auto", "path", "virtual"),
        "credentials_file": text("a path"),
        "multipart_threshold_bytes": integer(5 * 1024 * 1024, 5 * 1024**3, "bytes, at least "
                                             "S3's 5 MiB part minimum"),
        "part_size_bytes": integer(5 * 1024 * 1024, 5 * 1024**3, "bytes, at least S3's 5 MiB "
                                   "part minimum"),
    }),
    "uplink": (UplinkConfig, {
        "drain_timeout_s": number(0, 3600, "seconds `run --exit-at-eof` waits for the outbox "
                                  "to drain"),
        "live_segment_s": number(0, 60, "seconds between uploads of a clip in progress (0: "
                                 "upload clips only whole)"),
    }),
    "gpio": (GpioConfig, {
        "pin_factory": choice("", "mock", "lgpio", "rpigpio", "pigpio", "native"),
        "ring_pin": _PIN,
        "setup_pin": _PIN,
        "led_pin": _PIN,
        "ir_led_pin": integer(-1, 27, "BCM GPIO number of the IR LED's switch; -1: no IR LED"),
    }),
    "log": (LogConfig, {
        "level": choice("debug", "info", "warning", "error"),
        "format": choice("text", "json"),
    }),
}


def _motion_rules() -> dict[str, Rule]:
    """[motion] also takes any field of motion.DetectorParams by name, typed as declared."""
    from motion import DetectorParams  # OpenCV: only when a file is loaded

    rules: dict[str, Rule] = {}
    for f in dataclasses.fields(DetectorParams):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind == "bool":
            rules[f.name] = flag
        elif kind == "int":
            rules[f.name] = integer(-2**31, 2**31, "an integer, see motion.DetectorParams")
        else:
            rules[f.name] = number(-1e9, 1e9, "a number, see motion.DetectorParams")
    return rules


def _cross_checks(cfg: Config) -> list[str]:
    """Problems that involve several keys (each names them)."""
    problems = []
    g = cfg.gpio
    pins = [g.ring_pin, g.setup_pin, g.led_pin] + ([g.ir_led_pin] if g.ir_led_pin >= 0 else [])
    if len(set(pins)) != len(pins):
        problems.append(f"config keys gpio.ring_pin, setup_pin, led_pin, ir_led_pin = {pins}: "
                        "must be different pins (ir_led_pin -1 = none)")
    c = cfg.camera
    if c.ir_on_below_lux >= c.ir_off_above_lux:
        problems.append(f"config keys camera.ir_on_below_lux = {c.ir_on_below_lux:g}, "
                        f"ir_off_above_lux = {c.ir_off_above_lux:g}: on_below must be lower "
                        "than off_above (the gap keeps the LED from flickering at dusk)")
    from motion import DetectorParams

    try:
        DetectorParams(**dict(cfg.motion.tuning))
    except ValueError as exc:
        problems.append(f"config section [motion]: {exc}")
    return problems


def _section(raw: Mapping[str, Any], name: str, rules: Mapping[str, Rule],
             problems: list[str]) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        problems.append(f"config key {name} = {table!r}: must be a table ([{name}])")
        return {}
    values: dict[str, Any] = {}
    for key, value in table.items():
        rule = rules.get(key)
        if rule is None:
            problems.append(f"config key {name}.{key} is unknown: allowed keys in [{name}] are "
                            f"{', '.join(sorted(rules))}")
            continue
        try:
            values[key] = rule(value)
        except _Bad as bad:
            shown = value if bad.shown is None else bad.shown
            problems.append(f"config key {name}.{key}{bad.where} = {shown!r}: {bad.allowed}")
    return values


def _build(raw: Mapping[str, Any], path: str | None) -> Config:
    problems: list[str] = []
    for name in raw:
        if name in _REMOVED:
            problems.append(_REMOVED[name])
        elif name not in _RULES:
            problems.append(f"config section [{name}] is unknown: allowed are "
                            f"{', '.join(sorted(_RULES))}")
    sections: dict[str, Any] = {}
    for name, (cls, rules) in _RULES.items():
        if name == "motion":
            values = _section(raw, name, {**rules, **_motion_rules()}, problems)
            tuning = {k: values.pop(k) for k in list(values) if k not in rules}
            sections[name] = MotionConfig(**values, tuning=tuning)
        else:
            sections[name] = cls(**_section(raw, name, rules, problems))
    cfg = Config(**sections, path=path)
    problems += _cross_checks(cfg)
    if problems:
        raise ConfigError.of(path or "<text>", problems)
    return cfg


def parse_config(text: str, *, path: str | None = None) -> Config:
    """Parse and validate TOML text (``path`` only names the file in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path or '<text>'} is not valid TOML: {exc}") from exc
    return _build(raw, path)


def config_path(flag: str | None, *, system: Path = SYSTEM_CONFIG) -> str | None:
    """Which file to load: ``--config``, else ``$DOORWARD_CONFIG``, else ``system``
    (/etc/doorward/doorward.toml) if it exists, else None (the built-in defaults)."""
    if flag:
        return flag
    env = os.environ.get("DOORWARD_CONFIG", "")
    if env:
        return env
    return str(system) if system.is_file() else None


def load_config(path: Path | str | None) -> Config:
    """Load ``path``; ``None`` gives the built-in defaults (the same as config/doorward.toml)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist: pass --config with an existing file "
                          "(or fix $DOORWARD_CONFIG), or leave both out for "
                          f"{SYSTEM_CONFIG} or the defaults") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc} (doorward commands that use "
                          "the installed configuration may need sudo)") from exc
    return parse_config(text, path=str(p))
