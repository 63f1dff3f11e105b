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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CameraConfig:
    source: str = "sim:porch"
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    luma_width: int = 320


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
    # Cap on the clip's bit rate (x264's VBV maxrate; the hardware encoder's target): a 720p15
    # doorbell clip fits in 2 Mbit/s with mean SSIM >= 0.98 (BENCHMARKS.md, issue 19); 1900, not
    # 2000: x264's 1 s VBV buffer lets a clip overshoot the cap by up to 0.9 s of it (+1.2 % on
    # the 40 s visit).
    bitrate_kbps: int = 1900
    snapshot_quality: int = 85
    encoder: str = "auto"


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
class HomeAssistantConfig:
    discovery: bool = True
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class GpioConfig:
    pin_factory: str = ""
    ring_pin: int = 17
    setup_pin: int = 27
    led_pin: int = 22


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
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
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


_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
_LEVELS = ("debug", "info", "warning", "error")
_ENCODERS = ("auto", "hardware", "software")


def _number(key: str, value: Any, *, lo: float, hi: float, what: str, integer: bool = False) -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ConfigError(
            f"config key {key} = {value!r}: must be {kind} from {lo:g} to {hi:g} ({what})")
    return int(value) if integer else float(value)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"config key {key} = {value!r}: must be one of {', '.join(allowed)}")
    return str(value)


def _polygons(key: str, value: Any) -> tuple[Polygon, ...]:
    allowed = "a list of polygons, each a list of at least 3 [x, y] points with 0 <= x, y <= 1"
    if not isinstance(value, list):
        raise ConfigError(f"config key {key} = {value!r}: must be {allowed}")
    polys: list[Polygon] = []
    for i, poly in enumerate(value):
        if not isinstance(poly, list) or len(poly) < 3:
            raise ConfigError(f"config key {key}[{i}] = {poly!r}: must be {allowed}")
        points = []
        for p in poly:
            good = isinstance(p, list) and len(p) == 2
            good = good and all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)
            if not good or not all(0.0 <= c <= 1.0 for c in p):
                raise ConfigError(f"config key {key}[{i}] has point {p!r}: must be {allowed}")
            points.append((float(p[0]), float(p[1])))
        polys.append(tuple(points))
    return tuple(polys)


def _check_keys(section: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"config key {section}.{key} is unknown: allowed keys in [{section}] are "
                f"{', '.join(sorted(allowed))}"
            )


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config key {name} = {table!r}: must be a table ([{name}])")
    return table


def _build(raw: Mapping[str, Any], path: str | None) -> Config:
    sections = {"camera", "motion", "events", "recording", "store", "mqtt", "s3", "uplink",
                "homeassistant", "gpio", "log"}
    for name in raw:
        if name not in sections:
            raise ConfigError(
                f"config section [{name}] is unknown: allowed are {', '.join(sorted(sections))}"
            )
    d = Config()
    cam = _section(raw, "camera")
    _check_keys("camera", cam, {f.name for f in dataclasses.fields(CameraConfig)})
    source = cam.get("source", d.camera.source)
    if not isinstance(source, str) or not source:
        raise ConfigError(f"config key camera.source = {source!r}: must be a source such as "
                          "'sim:porch', 'file:PATH', 'v4l2:/dev/video0' or 'picamera2'")
    width = _number("camera.width", cam.get("width", d.camera.width), lo=64, hi=4096,
                    what="pixels, even", integer=True)
    height = _number("camera.height", cam.get("height", d.camera.height), lo=64, hi=4096,
                     what="pixels, even", integer=True)
    for key, v in (("camera.width", width), ("camera.height", height)):
        if v % 2:
            raise ConfigError(f"config key {key} = {v}: must be even (YUV 4:2:0 halves it)")
    camera = CameraConfig(
        source=source, width=width, height=height,
        fps=_number("camera.fps", cam.get("fps", d.camera.fps), lo=1, hi=60,
                    what="frames per second"),
        luma_width=_number("camera.luma_width", cam.get("luma_width", d.camera.luma_width),
                           lo=64, hi=1280, what="pixels", integer=True),
    )
    mot = dict(_section(raw, "motion"))
    zones = _polygons("motion.zones", mot.pop("zones", []))
    masks = _polygons("motion.privacy_masks", mot.pop("privacy_masks", []))
    for key, v in mot.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"config key motion.{key} = {v!r}: must be a number")
    motion = MotionConfig(zones=zones, privacy_masks=masks, tuning=dict(mot))
    ev = _section(raw, "events")
    _check_keys("events", ev, {f.name for f in dataclasses.fields(EventsConfig)})
    events = EventsConfig(
        min_motion_s=_number("events.min_motion_s", ev.get("min_motion_s", d.events.min_motion_s),
                             lo=0, hi=10, what="seconds"),
        gap_s=_number("events.gap_s", ev.get("gap_s", d.events.gap_s), lo=0, hi=1,
                      what="seconds"),
        fast_motion_s=_number("events.fast_motion_s",
                              ev.get("fast_motion_s", d.events.fast_motion_s), lo=0, hi=10,
                              what="seconds; 0 turns the short path off"),
        post_roll_s=_number("events.post_roll_s", ev.get("post_roll_s", d.events.post_roll_s),
                            lo=0, hi=60, what="seconds"),
        max_clip_s=_number("events.max_clip_s", ev.get("max_clip_s", d.events.max_clip_s),
                           lo=5, hi=3600, what="seconds"),
    )
    rec = _section(raw, "recording")
    _check_keys("recording", rec, {f.name for f in dataclasses.fields(RecordingConfig)})
    recording = RecordingConfig(
        pre_roll_s=_number("recording.pre_roll_s", rec.get("pre_roll_s", d.recording.pre_roll_s),
                           lo=0, hi=30, what="seconds"),
        gop_s=_number("recording.gop_s", rec.get("gop_s", d.recording.gop_s), lo=0.1, hi=1.0,
                      what="seconds between keyframes; at most 1 so pre-roll stays precise"),
        preset=_choice("recording.preset", rec.get("preset", d.recording.preset), _PRESETS),
        crf=_number("recording.crf", rec.get("crf", d.recording.crf), lo=0, hi=51,
                    what="x264 quality, lower is better", integer=True),
        bitrate_kbps=_number("recording.bitrate_kbps",
                             rec.get("bitrate_kbps", d.recording.bitrate_kbps), lo=100,
                             hi=50_000, what="kbit/s, the clip's bit-rate cap", integer=True),
        snapshot_quality=_number("recording.snapshot_quality",
                                 rec.get("snapshot_quality", d.recording.snapshot_quality),
                                 lo=10, hi=100, what="JPEG quality", integer=True),
        encoder=_choice("recording.encoder", rec.get("encoder", d.recording.encoder),
                        _ENCODERS),
    )
    st = _section(raw, "store")
    _check_keys("store", st, {f.name for f in dataclasses.fields(StoreConfig)})
    data_dir = st.get("data_dir", d.store.data_dir)
    if not isinstance(data_dir, str):
        raise ConfigError(f"config key store.data_dir = {data_dir!r}: must be a path string "
                          "(empty for the default)")
    store = StoreConfig(
        data_dir=data_dir,
        max_bytes=_number("store.max_bytes", st.get("max_bytes", d.store.max_bytes),
                          lo=10_000_000, hi=2**50, what="bytes of clips kept", integer=True),
        retention_days=_number("store.retention_days",
                               st.get("retention_days", d.store.retention_days),
                               lo=0.01, hi=3650, what="days a clip is kept"),
        min_free_bytes=_number("store.min_free_bytes",
                               st.get("min_free_bytes", d.store.min_free_bytes), lo=0, hi=2**50,
                               what="bytes kept free on the data dir's file system, evicting "
                               "clips; 0 turns the floor off", integer=True),
    )
    mqtt = _build_mqtt(_section(raw, "mqtt"))
    gpio = _build_gpio(_section(raw, "gpio"))
    s3 = _build_s3(_section(raw, "s3"))
    up = _section(raw, "uplink")
    _check_keys("uplink", up, {f.name for f in dataclasses.fields(UplinkConfig)})
    uplink = UplinkConfig(
        drain_timeout_s=_number(
            "uplink.drain_timeout_s", up.get("drain_timeout_s", 60.0), lo=0, hi=3600,
            what="seconds `run --exit-at-eof` waits for the outbox to drain"),
        live_segment_s=_number(
            "uplink.live_segment_s", up.get("live_segment_s", 2.0), lo=0, hi=60,
            what="seconds between uploads of a clip in progress (0: upload clips only whole)"))
    homeassistant = _build_homeassistant(_section(raw, "homeassistant"))
    lg = _section(raw, "log")
    _check_keys("log", lg, {f.name for f in dataclasses.fields(LogConfig)})
    log = LogConfig(level=_choice("log.level", lg.get("level", d.log.level), _LEVELS),
                    format=_choice("log.format", lg.get("format", d.log.format), ("text", "json")))
    return Config(camera=camera, motion=motion, events=events, recording=recording, store=store,
                  mqtt=mqtt, s3=s3, uplink=uplink, homeassistant=homeassistant, gpio=gpio,
                  log=log, path=path)


def _build_s3(t: Mapping[str, Any]) -> S3Config:
    _check_keys("s3", t, {f.name for f in dataclasses.fields(S3Config)})
    d = S3Config()
    sizes = {k: _number(f"s3.{k}", t.get(k, getattr(d, k)), lo=5 * 1024 * 1024, hi=5 * 1024**3,
                        what="bytes, at least S3's 5 MiB part minimum", integer=True)
             for k in ("multipart_threshold_bytes", "part_size_bytes")}
    vals = {f.name: _string(f"s3.{f.name}", t.get(f.name, getattr(d, f.name)), "a string")
            for f in dataclasses.fields(S3Config) if f.name not in sizes}
    _choice("s3.addressing_style", vals["addressing_style"], ("auto", "path", "virtual"))
    url = vals["endpoint_url"]
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"config key s3.endpoint_url = {url!r}: must be http(s)://host[:port], "
                          "or empty for AWS")
    return S3Config(bucket=vals["bucket"], endpoint_url=url, prefix=vals["prefix"],
                    region=vals["region"], addressing_style=vals["addressing_style"],
                    credentials_file=vals["credentials_file"], **sizes)


def _string(key: str, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key {key} = {value!r}: must be a string ({what})")
    return value


def _build_mqtt(t: Mapping[str, Any]) -> MqttConfig:
    _check_keys("mqtt", t, {f.name for f in dataclasses.fields(MqttConfig)})
    d = MqttConfig()
    url = _string("mqtt.url", t.get("url", d.url), "mqtt://host:port or mqtts://host:port, "
                  "empty for no broker")
    if url and not url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"config key mqtt.url = {url!r}: must start with mqtt:// or mqtts://")
    allow_plain = t.get("allow_plain", d.allow_plain)
    if not isinstance(allow_plain, bool):
        raise ConfigError(f"config key mqtt.allow_plain = {allow_plain!r}: must be true or false")
    return MqttConfig(
        url=url, allow_plain=allow_plain,
        ca_file=_string("mqtt.ca_file", t.get("ca_file", d.ca_file), "a path"),
        cert_file=_string("mqtt.cert_file", t.get("cert_file", d.cert_file), "a path"),
        key_file=_string("mqtt.key_file", t.get("key_file", d.key_file), "a path"),
    )


def _build_homeassistant(t: Mapping[str, Any]) -> HomeAssistantConfig:
    _check_keys("homeassistant", t, {f.name for f in dataclasses.fields(HomeAssistantConfig)})
    d = HomeAssistantConfig()
    discovery = t.get("discovery", d.discovery)
    if not isinstance(discovery, bool):
        raise ConfigError(f"config key homeassistant.discovery = {discovery!r}: must be true or "
                          "false")
    prefix = t.get("discovery_prefix", d.discovery_prefix)
    # 1-3 topic levels, no wildcards: discovery topics add 4 levels and fleet brokers take 8
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,2}",
                                                       prefix):
        raise ConfigError(f"config key homeassistant.discovery_prefix = {prefix!r}: must be 1-3 "
                          "topic levels of A-Z a-z 0-9 _ - separated by '/' (Home Assistant's "
                          "default is 'homeassistant')")
    return HomeAssistantConfig(discovery=discovery, discovery_prefix=prefix)


def _build_gpio(t: Mapping[str, Any]) -> GpioConfig:
    _check_keys("gpio", t, {f.name for f in dataclasses.fields(GpioConfig)})
    d = GpioConfig()
    factories = ("", "mock", "lgpio", "rpigpio", "pigpio", "native")
    pins = {k: _number(f"gpio.{k}", t.get(k, getattr(d, k)), lo=0, hi=27,
                       what="BCM GPIO number", integer=True)
            for k in ("ring_pin", "setup_pin", "led_pin")}
    if len(set(pins.values())) != 3:
        raise ConfigError(f"config keys gpio.ring_pin, setup_pin, led_pin = "
                          f"{sorted(pins.values())}: must be three different pins")
    return GpioConfig(pin_factory=_choice("gpio.pin_factory", t.get("pin_factory", ""), factories),
                      **pins)


def parse_config(text: str, *, path: str | None = None) -> Config:
    """Parse and validate TOML text (``path`` only names the file in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path or '<text>'} is not valid TOML: {exc}") from exc
    return _build(raw, path)


def load_config(path: Path | str | None) -> Config:
    """Load ``path``; ``None`` gives the built-in defaults (the same as config/doorward.toml)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist: pass --config with an existing file, "
                          "or leave it out for the defaults") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc}") from exc
    return parse_config(text, path=str(p))
