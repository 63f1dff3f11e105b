"""``doorward doctor``: is this device ready to run? A list of checks, each PASS, WARN or FAIL.

Each check is a small function of explicit inputs returning :class:`Check` (or a list of them), so
unit tests drive it with fakes and no servers; :func:`run_checks` wires the real ones for the CLI.
A FAIL blocks operation (the CLI exits 1); a WARN is worth knowing (exit 0). Every FAIL says what
to do, in ``fix`` or in the (translated) error it quotes.

Wiring (agent/cli.py)::

    return doctor.main(args)      # loads the config itself: a bad config is a FAIL, not a crash

Nothing here writes to the device's databases: they are read read-only (``PRAGMA quick_check``);
the data directory check creates and removes one temporary file. The broker check connects with
the device's settings under the client id ``<device id>-doctor`` (never the daemon's own id: the
broker would disconnect a running daemon to let the doctor in) and publishes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.camera.sources import SourceSpec, parse_source
from agent.config import Config, load_config
from agent.errors import ConfigError, DoorwardError
from agent.paths import DataDir
from agent.sqlite import open_readonly
from agent.tools.display import utc_minute
from agent.tools.status_report import (
    ClockFloor,
    DeviceView,
    clock_floors,
    clock_warning,
    disk_free,
    read_device,
    store_bytes,
)

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
MIN_FREE_BYTES = 64 * 1024 * 1024  # the store's own floor (ClipStore.min_free_bytes)
CONSENT_WARN_S = 7 * 86400.0


@dataclass(frozen=True)
class Check:
    """One result: ``name`` (camera, gpio, ...), ``status`` (PASS | WARN | FAIL), a one-line
    ``summary`` and, for WARN/FAIL, ``fix``: what to do."""

    name: str
    status: str
    summary: str
    fix: str = ""


def _err(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# ---- config and camera --------------------------------------------------------------------------


def check_config(path: str | None, load: Callable[[str | None], Config] = load_config,
                 ) -> tuple[Check, Config | None]:
    """The config loads (which file); on failure the other checks run on the defaults."""
    try:
        cfg = load(path)
    except ConfigError as exc:  # every problem, as `run` would report them
        return Check("config", FAIL, "; ".join(exc.problems), "fix the file named above, or "
                     "run without --config to use the built-in defaults"), None
    except DoorwardError as exc:
        return Check("config", FAIL, _err(exc), "fix the file named above, or run without "
                     "--config to use the built-in defaults"), None
    where = f"{path} loads" if path else "built-in defaults (no --config given)"
    return Check("config", PASS, where), cfg


def check_camera(spec_text: str, *, import_picamera2: Callable[[], Any] | None = None,
                 open_file: Callable[[str], None] | None = None,
                 tuning_file: str = "") -> Check:
    """The configured source: picamera2 imports and sees a camera (without opening it, so a
    running daemon keeps it) and finds ``tuning_file`` ([camera] tuning_file); a sim scene
    exists; a file opens; a v4l2 device node exists."""
    try:
        spec = parse_source(spec_text)
    except DoorwardError as exc:
        return Check("camera", FAIL, _err(exc), "set [camera] source or --source")
    try:
        return _camera(spec, import_picamera2, open_file, tuning_file)
    except DoorwardError as exc:
        return Check("camera", FAIL, f"{spec}: {_err(exc)}",
                     "as the message says; --source sim:porch runs without any camera")


def _camera(spec: SourceSpec, import_picamera2: Callable[[], Any] | None,
            open_file: Callable[[str], None] | None, tuning_file: str = "") -> Check:
    if spec.kind == "sim":
        from agent.camera.sim import get_scene

        get_scene(spec.arg)  # CameraError naming the known scenes
        return Check("camera", PASS, f"simulated scene sim:{spec.arg}")
    if spec.kind == "file":
        (open_file or _open_file)(spec.arg)
        return Check("camera", PASS, f"file:{spec.arg} opens")
    if spec.kind == "v4l2":
        dev = Path(spec.arg)
        if not dev.exists():
            return Check("camera", FAIL, f"v4l2:{dev} does not exist",
                         "plug the webcam in and check `ls /dev/video*`, or use --source "
                         "sim:porch")
        if not os.access(dev, os.R_OK | os.W_OK):
            return Check("camera", FAIL, f"v4l2:{dev} exists but is not readable and writable",
                         "add the user to the 'video' group (`sudo adduser $USER video`)")
        return Check("camera", PASS, f"v4l2:{dev} exists and is accessible")
    from agent.camera.picam import import_picamera2 as lazy_import

    module = (import_picamera2 or lazy_import)()
    try:
        cameras = list(module.Picamera2.global_camera_info())
    except (RuntimeError, OSError) as exc:
        return Check("camera", FAIL, f"picamera2 cannot list cameras: {_err(exc)}",
                     "check `rpicam-hello --list-cameras` and the camera's ribbon cable")
    if not cameras:
        return Check("camera", FAIL, "picamera2 imports but sees no camera",
                     "check the ribbon cable (contacts facing the board, latch closed) and "
                     "`rpicam-hello --list-cameras`, or use --source sim:porch")
    models = ", ".join(str(c.get("Model", "?")) for c in cameras)
    if tuning_file:
        try:
            module.Picamera2.load_tuning_file(tuning_file)
        except (RuntimeError, OSError, ValueError) as exc:
            return Check("camera", FAIL, f"config key camera.tuning_file = {tuning_file!r}: "
                         f"cannot be loaded ({_err(exc)})", "use a file of "
                         "/usr/share/libcamera/ipa/rpi/vc4 (pisp on a Pi 5), e.g. "
                         "'imx219_noir.json', or a full path")
        models += f", tuning {tuning_file}"
    return Check("camera", PASS, f"picamera2: {len(cameras)} camera(s) ({models})")


def _open_file(path: str) -> None:
    from agent.camera.file import FileCamera

    with FileCamera(path, luma_width=None, want_main=False):
        pass


# ---- GPIO and clock -----------------------------------------------------------------------------


def check_gpio(cfg: Config, spec_text: str,
               make_factory: Callable[[str | None], Any] | None = None) -> Check:
    """The pin factory ``doorward run`` would use ([gpio] pin_factory; simulated pins for
    simulated sources; else gpiozero's default) can be created."""
    try:
        simulated = parse_source(spec_text).simulated
    except DoorwardError:
        simulated = True
    name = cfg.gpio.pin_factory or ("sim" if simulated else None)
    from agent.device.buttons import make_pin_factory

    try:
        factory = (make_factory or make_pin_factory)(name)
    except DoorwardError as exc:
        return Check("gpio", FAIL, _err(exc), "set [gpio] pin_factory (lgpio on a Pi 5), or "
                     "use a simulated --source to run with mock pins")
    kind = type(factory).__name__
    close = getattr(factory, "close", None)
    if callable(close):
        close()
    what = {"sim": "simulated pins (simulated source)", "mock": "mock pins (gpiozero's)"}.get(
        name or "", kind)
    return Check("gpio", PASS, f"pin factory {what}")


def ntp_synchronized(run: Callable[..., Any] = subprocess.run,
                     which: Callable[[str], str | None] = shutil.which) -> bool | None:
    """``timedatectl show -p NTPSynchronized``: True/False, or None when it cannot tell (no
    timedatectl, no systemd as PID 1, e.g. in a container)."""
    exe = which("timedatectl")
    if exe is None:
        return None
    try:
        out = run([exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                  text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    value = str(out.stdout).strip()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


def check_clock(now: float, floors: Sequence[ClockFloor], synced: bool | None) -> Check:
    """The wall clock is plausible (:func:`agent.tools.status_report.clock_warning`: FAIL
    before this version's release date, WARN before the newest ledger entry) and NTP says
    synchronised (WARN when unknown or not). Consent expiry and the times in the ledger and on
    clips depend on it; revoking consent never does (the device accepts a revoke whatever the
    clocks say)."""
    stamp = utc_minute(now)
    fix = ("set the time (`sudo timedatectl set-ntp true`, check network access to NTP); "
           "consent expiry and clip times depend on it")
    warning = clock_warning(now, list(floors))
    if warning is not None:
        certain = clock_warning(now, [f for f in floors if f.certain]) is not None
        return Check("clock", FAIL if certain else WARN, warning, fix)
    if synced is None:
        return Check("clock", WARN, f"{stamp}; NTP synchronisation unknown (timedatectl "
                     "missing or no systemd)",
                     "make sure an NTP client runs (systemd-timesyncd on Raspberry Pi OS)")
    if not synced:
        return Check("clock", WARN, f"{stamp}; NTP not synchronised yet", fix)
    return Check("clock", PASS, f"{stamp}, NTP synchronised")


# ---- storage ------------------------------------------------------------------------------------


def check_data_dir(data_dir: Path) -> Check:
    """The data directory exists (or can be created) and is writable: a real write, since
    permission bits do not tell about read-only mounts."""
    if not data_dir.exists():
        parent = next((p for p in data_dir.parents if p.exists()), None)
        if parent is not None and os.access(parent, os.W_OK):
            return Check("data dir", WARN, f"{data_dir} does not exist yet",
                         "`doorward run` creates it; pass --data-dir if it should be elsewhere")
        return Check("data dir", FAIL, f"{data_dir} does not exist and cannot be created",
                     "create it writable for the doorward user, or pass --data-dir")
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", FAIL, f"{data_dir} is not writable ({_err(exc)})",
                     "fix its owner/permissions (StateDirectory= under systemd) or the mount")
    return Check("data dir", PASS, f"{data_dir} is writable")


def check_disk(data_dir: Path, max_bytes: int, free: int | None, used: int,
               min_free_bytes: int = MIN_FREE_BYTES) -> Check:
    """Free space against the store's floor ([store] min_free_bytes) and its maximum."""
    if free is None:
        return Check("disk", WARN, "free space unknown", "check the data directory's mount")
    mb = f"{free / 1e6:,.0f} MB free, store uses {used / 1e6:,.0f} MB of {max_bytes / 1e6:,.0f} MB"
    if free < min_free_bytes:
        return Check("disk", FAIL, f"{mb}: below the {min_free_bytes / 2**20:g} MiB floor "
                     f"([store] min_free_bytes = {min_free_bytes})",
                     "free space on the card (clips are evicted, but other files fill it too), "
                     "or lower [store] min_free_bytes")
    if free + used < max_bytes:
        return Check("disk", WARN, f"{mb}: the disk cannot hold [store] max_bytes",
                     f"lower [store] max_bytes to at most {int((free + used) * 0.9)}")
    return Check("disk", PASS, mb)


def check_database(path: Path) -> Check:
    """``PRAGMA quick_check`` of one SQLite file, read-only; missing is fine before a first run."""
    name = f"db {path.name}"
    try:
        with open_readonly(path) as db:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
    except FileNotFoundError:
        return Check(name, PASS, "not created yet (the first `doorward run` creates it)")
    except sqlite3.Error as exc:
        return Check(name, FAIL, f"{path} cannot be read: {_err(exc)}",
                     "stop doorward, move the file aside and restart (it is recreated empty)")
    if rows != ["ok"]:
        return Check(name, FAIL, f"{path} is damaged: {'; '.join(rows[:3])}",
                     "stop doorward, move the file aside and restart (it is recreated empty); "
                     "the card may be failing")
    return Check(name, PASS, "integrity ok")


# ---- pairing and consent ------------------------------------------------------------------------


def check_pairing(view: DeviceView | None, dev_owner: bool) -> Check:
    if view is None:
        return Check("pairing", WARN, "no device database yet",
                     "run `doorward run` once, then pair (hold SETUP 3 s, `doorward owner pair`)")
    if not view.owners:
        what = ("clips are sealed to the development owner" if dev_owner
                else "nothing is recorded until an owner pairs")
        return Check("pairing", WARN, f"not paired: {what}",
                     "hold SETUP 3 s, then run `doorward owner pair` on the owner's computer")
    return Check("pairing", PASS, f"paired: {view.owners} owner(s), {view.viewers} viewer(s)")


def check_consent(view: DeviceView | None, now: float) -> Check:
    if view is None or not view.owners:
        return Check("consent", PASS, "none (not paired): nothing leaves the device")
    if not view.grants:
        return Check("consent", WARN, "no consent in force: events and clips stay on the device",
                     "the owner grants with `doorward owner consent grant --scopes ...`")
    parts, soon = [], []
    for scope, until in view.grants.items():
        if until is None:
            parts.append(f"{scope} until revoked")
            continue
        parts.append(f"{scope} until {utc_minute(until)}")
        if until - now < CONSENT_WARN_S:
            soon.append(f"{scope} in {(until - now) / 86400:.1f} days")
    if soon:
        return Check("consent", WARN, f"expiring soon: {', '.join(soon)}",
                     "the owner renews with `doorward owner consent grant`")
    return Check("consent", PASS, "; ".join(parts))


# ---- the uplinks --------------------------------------------------------------------------------


def device_id_of(data_dir: Path) -> str | None:
    """The device id, if the identity exists (never creates one)."""
    from uplink import UplinkError, device_id_for, load_ed25519, public_raw

    path = DataDir(data_dir).device_key
    if not path.is_file():
        return None
    try:
        return device_id_for(public_raw(load_ed25519(path)))
    except (OSError, ValueError, UplinkError):  # unreadable: the broker check goes on without it
        return None


BrokerProbe = Callable[[Any, float], None]


def probe_broker(settings: Any, timeout_s: float) -> None:
    """Connect with ``settings`` (uplink.mqtt.MqttSettings) and disconnect; MqttError (the
    translated failure) if it does not connect within ``timeout_s``."""
    from uplink import MqttClient, MqttConnectError

    client = MqttClient(settings, on_message=lambda message: None)
    client.start()
    try:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = client.events.get(timeout=left)
            except queue.Empty:
                break
            if ev.connected:
                return
            if ev.error is not None:  # a refused CONNECT, TLS failure, connection refused
                raise ev.error
        raise client.last_error or MqttConnectError(
            f"no answer from broker {client.broker.where} within {timeout_s:g} s: check [mqtt] "
            "url, the network and that the broker runs")
    finally:
        client.stop()


def check_broker(cfg: Config, url: str | None, device_id: str | None, timeout_s: float,
                 probe: BrokerProbe = probe_broker) -> Check:
    """Connect to the broker with the configured TLS settings (certificate and key loaded,
    the CA verifying the server); every failure comes translated by uplink.mqtt."""
    from uplink import MqttError, MqttSettings, read_password_file

    url = url or cfg.mqtt.url
    if not url:
        return Check("broker", PASS, "not configured: local only (pairing needs a broker)")

    def path(value: str) -> Path | None:
        return Path(value).expanduser() if value else None

    try:
        password = (read_password_file(cfg.mqtt.password_file) if cfg.mqtt.password_file
                    else None)
        settings = MqttSettings(url=url, client_id=f"{device_id or 'doorward'}-doctor",
                                username=cfg.mqtt.username or device_id, password=password,
                                ca_file=path(cfg.mqtt.ca_file), cert_file=path(cfg.mqtt.cert_file),
                                key_file=path(cfg.mqtt.key_file),
                                allow_plain=cfg.mqtt.allow_plain, reconnect_max_s=2)
        probe(settings, timeout_s)
    except MqttError as exc:
        return Check("broker", FAIL, _err(exc), "as the message says: [mqtt] url, ca_file, "
                     "cert_file, key_file, username, password_file, or the broker itself")
    tls = "TLS, server verified" if url.startswith("mqtts://") else "plain TCP"
    return Check("broker", PASS, f"{url} accepts this device ({tls})")


BucketProbe = Callable[[Any], None]


def probe_bucket(settings: Any) -> None:
    """One cheap request (LIST, at most one key) with ``settings`` (uplink.s3.S3Settings);
    the translated S3Error if the bucket cannot be reached or read."""
    from uplink import S3ObjectStore

    store = S3ObjectStore(settings)
    store.call(f"LIST bucket {settings.bucket!r}", lambda: store.client.list_objects_v2(
        Bucket=settings.bucket, Prefix=settings.prefix, MaxKeys=1))


def check_bucket(cfg: Config, timeout_s: float, probe: BucketProbe = probe_bucket) -> Check:
    """Reach the bucket with the configured endpoint and credentials (one attempt, short
    timeouts)."""
    from uplink import S3AuthError, S3Error, S3NotFound, S3Settings

    s3 = cfg.s3
    if not s3.bucket:
        return Check("bucket", PASS, "not configured: clips stay on the device")
    try:
        settings = S3Settings(
            bucket=s3.bucket, endpoint_url=s3.endpoint_url or None, prefix=s3.prefix,
            region=s3.region, addressing_style=s3.addressing_style,  # type: ignore[arg-type]
            credentials_file=Path(s3.credentials_file) if s3.credentials_file else None,
            max_attempts=1, connect_timeout_s=timeout_s, read_timeout_s=timeout_s)
        probe(settings)
    except ValueError as exc:
        return Check("bucket", FAIL, _err(exc), "fix the [s3] section")
    except S3Error as exc:
        fix = ("check the credentials ([s3] credentials_file or AWS_* variables)"
               if isinstance(exc, S3AuthError) else "create the bucket or fix [s3] bucket"
               if isinstance(exc, S3NotFound) else "check [s3] endpoint_url and the network")
        return Check("bucket", FAIL, _err(exc), fix)
    where = s3.endpoint_url or f"AWS S3 ({s3.region})"
    return Check("bucket", PASS, f"{s3.bucket!r} on {where} is reachable with these credentials")


# ---- running them -------------------------------------------------------------------------------


def run_checks(cfg: Config, config_check: Check, *, data_dir: Path, source: str,
               broker: str | None, timeout_s: float, now: float | None = None) -> list[Check]:
    """Every check, in the order the report shows them."""
    now = time.time() if now is None else now
    checks = [config_check, check_camera(source, tuning_file=cfg.camera.tuning_file),
              check_gpio(cfg, source),
              check_clock(now, clock_floors(data_dir), ntp_synchronized()),
              check_data_dir(data_dir)]
    try:
        used = (store_bytes(data_dir) or (0, 0))[0]
    except sqlite3.Error:  # the quick_check below names the broken file
        used = 0
    checks.append(check_disk(data_dir, cfg.store.max_bytes, disk_free(data_dir), used,
                             cfg.store.min_free_bytes))
    paths = DataDir(data_dir)
    checks += [check_database(path) for path in paths.databases]
    try:
        view = read_device(data_dir, now)
    except sqlite3.Error as exc:  # check_database says more
        name = paths.device_db.name
        checks.append(Check("pairing", FAIL, f"{name} cannot be read: {_err(exc)}",
                            f"see the db {name} check"))
    else:
        try:
            dev_owner = parse_source(source).dev_owner
        except DoorwardError:
            dev_owner = True
        checks += [check_pairing(view, dev_owner), check_consent(view, now)]
    checks.append(check_broker(cfg, broker, device_id_of(data_dir), timeout_s))
    checks.append(check_bucket(cfg, timeout_s))
    return checks


def report(checks: Sequence[Check], config_path: str | None) -> dict[str, Any]:
    """The ``--json`` document: ``ok`` (no FAIL), ``config`` (the file, null for the defaults),
    ``counts`` per status and ``checks`` (name, status, summary, fix), in order."""
    return {"ok": not any(c.status == FAIL for c in checks), "config": config_path,
            "counts": {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL)},
            "checks": [asdict(c) for c in checks]}


def render(checks: Sequence[Check]) -> list[str]:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status}  {c.name:<{width}}  {c.summary}")
        if c.fix and c.status != PASS:
            lines.append(f"{'':6}{'':<{width}}  -> {c.fix}")
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines.append(f"{fails} failure(s), {warns} warning(s)" if fails or warns
                 else "all checks passed")
    return lines


def main(args: argparse.Namespace) -> int:
    """``doorward doctor``: 1 if any check FAILs, else 0."""
    config_check, cfg = check_config(args.config)
    cfg = cfg or Config()
    data_dir = cfg.data_dir(args.data_dir)
    checks = run_checks(cfg, config_check, data_dir=data_dir,
                        source=args.source or cfg.camera.source, broker=args.broker,
                        timeout_s=args.timeout)
    if args.json:
        print(json.dumps(report(checks, args.config), indent=2))
    else:
        print("\n".join(render(checks)))
    return 1 if any(c.status == FAIL for c in checks) else 0
