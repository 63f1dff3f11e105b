"""``doorward doctor``: each check driven through its injected inputs, without servers."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import Config, GpioConfig, MqttConfig, S3Config
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.errors import CameraError, DoorwardError
from agent.tools import doctor
from agent.tools.doctor import FAIL, PASS, WARN, Check
from agent.tools.status_report import ClockFloor, DeviceView, clock_floors, release_floor
from uplink.mqtt import MqttTlsError
from uplink.s3 import S3AuthError, S3NotFound

NOW = 1_800_000_000.0  # 2027-01-15
DAY = 86400.0


def test_config_pass_names_the_file_and_fail_quotes_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[camera]\nsource = \"sim:visit\"\n")
    check, cfg = doctor.check_config(str(good))
    assert check.status == PASS and str(good) in check.summary
    assert cfg is not None and cfg.camera.source == "sim:visit"
    bad = tmp_path / "bad.toml"
    bad.write_text("[recording]\npre_roll_s = 99\n")
    check, cfg = doctor.check_config(str(bad))
    assert check.status == FAIL and "recording.pre_roll_s = 99" in check.summary and cfg is None
    assert doctor.check_config(None)[0].summary.startswith("built-in defaults")


def test_camera_sim_file_and_v4l2(tmp_path: Path) -> None:
    assert doctor.check_camera("sim:porch").status == PASS
    unknown = doctor.check_camera("sim:nope")
    assert unknown.status == FAIL and "porch" in unknown.summary  # lists the known scenes
    assert doctor.check_camera("webcam").status == FAIL
    missing = doctor.check_camera(f"file:{tmp_path / 'none.mp4'}")
    assert missing.status == FAIL and "does not exist" in missing.summary
    opened: list[str] = []
    assert doctor.check_camera("file:/x.mp4", open_file=opened.append).status == PASS
    assert opened == ["/x.mp4"]
    assert doctor.check_camera(f"v4l2:{tmp_path / 'video9'}").status == FAIL
    node = tmp_path / "video0"
    node.touch()
    assert doctor.check_camera(f"v4l2:{node}").status == PASS


class FakePicamera2:
    cameras: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def global_camera_info(cls) -> list[dict[str, Any]]:
        return cls.cameras

    @staticmethod
    def load_tuning_file(name: str) -> dict[str, Any]:
        if name != "imx708_noir.json":
            raise RuntimeError("Tuning file not found")
        return {"version": 2.0}


def test_camera_picamera2_through_the_lazy_import() -> None:
    def missing() -> Any:
        raise CameraError("picamera2 is not available (No module named 'libcamera'). "
                          "On a Raspberry Pi: apt install python3-picamera2")

    check = doctor.check_camera("picamera2", import_picamera2=missing)
    assert check.status == FAIL and "apt install python3-picamera2" in check.summary
    module = SimpleNamespace(Picamera2=FakePicamera2)
    FakePicamera2.cameras = []
    none = doctor.check_camera("picamera2", import_picamera2=lambda: module)
    assert none.status == FAIL and "ribbon cable" in none.fix
    FakePicamera2.cameras = [{"Model": "imx708", "Num": 0}]
    one = doctor.check_camera("picamera2", import_picamera2=lambda: module)
    assert one.status == PASS and "imx708" in one.summary
    # a tuning file the camera would not find fails here, as it would fail `run`
    noir = doctor.check_camera("picamera2", import_picamera2=lambda: module,
                               tuning_file="imx708_noir.json")
    assert noir.status == PASS and "tuning imx708_noir.json" in noir.summary
    typo = doctor.check_camera("picamera2", import_picamera2=lambda: module,
                               tuning_file="imx708_noire.json")
    assert typo.status == FAIL and "camera.tuning_file = 'imx708_noire.json'" in typo.summary


def test_gpio_mock_for_simulated_and_failure_names_the_fix() -> None:
    asked: list[str | None] = []

    class Factory:
        closed = False

        def close(self) -> None:
            Factory.closed = True

    def make(name: str | None) -> Any:
        asked.append(name)
        return Factory()

    assert doctor.check_gpio(Config(), "sim:porch", make).status == PASS
    assert asked == ["sim"] and Factory.closed
    doctor.check_gpio(Config(), "picamera2", make)
    assert asked[-1] is None  # gpiozero's default on real hardware
    doctor.check_gpio(Config(gpio=GpioConfig(pin_factory="lgpio")), "picamera2", make)
    assert asked[-1] == "lgpio"

    def broken(name: str | None) -> Any:
        raise DoorwardError("no GPIO here: use a simulated source")

    check = doctor.check_gpio(Config(), "picamera2", broken)
    assert check.status == FAIL and "no GPIO here" in check.summary and check.fix
    assert doctor.check_gpio(Config(), "sim:porch").status == PASS  # the real SimulatedPins


def floors(ledger_at: float) -> list[ClockFloor]:
    return [release_floor(), ClockFloor(ledger_at, "the newest ledger entry", False)]


def test_clock() -> None:
    assert doctor.check_clock(NOW, floors(NOW - DAY), True).status == PASS
    unset = doctor.check_clock(86400.0 * 365, floors(NOW - DAY), True)  # 1971: no RTC, no NTP
    assert unset.status == FAIL and "not set" in unset.summary and "timedatectl" in unset.fix
    assert "release of doorward" in unset.summary
    behind = doctor.check_clock(NOW - 10 * DAY, floors(NOW), True)  # went back in time
    assert behind.status == WARN and "before the newest ledger entry" in behind.summary
    assert doctor.check_clock(NOW - 60, floors(NOW), True).status == PASS  # an NTP step back
    assert doctor.check_clock(NOW, floors(NOW), None).status == WARN
    assert doctor.check_clock(NOW, floors(NOW), False).status == WARN


def test_clock_floors_come_from_the_release_and_the_ledger(tmp_path: Path) -> None:
    assert [f.what for f in clock_floors(tmp_path)] == [release_floor().what]  # no ledger yet
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        Ledger(db, Ed25519PrivateKey.generate()).append("setting", {"x": 1}, NOW)
    finally:
        db.close()
    newest = clock_floors(tmp_path)[-1]
    assert (newest.at, newest.certain) == (NOW, False)


def test_ntp_synchronized_reads_timedatectl() -> None:
    def runner(stdout: str, rc: int = 0) -> Any:
        def run(cmd: list[str], **kw: Any) -> Any:
            assert cmd[1:] == ["show", "-p", "NTPSynchronized", "--value"]
            return subprocess.CompletedProcess(cmd, rc, stdout=stdout, stderr="")
        return run

    def which(name: str) -> str | None:
        return "/usr/bin/timedatectl"

    assert doctor.ntp_synchronized(runner("yes\n"), which) is True
    assert doctor.ntp_synchronized(runner("no\n"), which) is False
    assert doctor.ntp_synchronized(runner("", 1), which) is None  # no systemd as PID 1
    assert doctor.ntp_synchronized(runner("yes\n"), lambda name: None) is None


def test_data_dir(tmp_path: Path) -> None:
    assert doctor.check_data_dir(tmp_path).status == PASS
    assert not list(tmp_path.iterdir())  # the probe file is gone
    assert doctor.check_data_dir(tmp_path / "new").status == WARN
    blocker = tmp_path / "file"
    blocker.write_text("x")
    check = doctor.check_data_dir(blocker)  # exists, but not a directory one can write into
    assert check.status == FAIL and check.fix


def test_disk_space_against_the_floor_and_max_bytes(tmp_path: Path) -> None:
    gb = 1_000_000_000
    assert doctor.check_disk(tmp_path, 2 * gb, 10 * gb, 0).status == PASS
    small = doctor.check_disk(tmp_path, 2 * gb, gb, 100_000_000)
    assert small.status == WARN and "max_bytes" in small.fix
    full = doctor.check_disk(tmp_path, 2 * gb, 10_000_000, 500_000_000)
    assert full.status == FAIL and "MiB floor" in full.summary


def test_database_quick_check(tmp_path: Path) -> None:
    import sqlite3

    assert doctor.check_database(tmp_path / "index.sqlite").status == PASS  # not yet created
    good = tmp_path / "device.sqlite"
    with sqlite3.connect(good) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    assert doctor.check_database(good).summary == "integrity ok"
    bad = tmp_path / "outbox.sqlite"
    bad.write_bytes(b"this is no database " * 300)
    check = doctor.check_database(bad)
    assert check.status == FAIL and "move the file aside" in check.fix


def test_pairing_and_consent() -> None:
    assert doctor.check_pairing(None, True).status == WARN
    unpaired = DeviceView(owners=0, viewers=0, grants={})
    assert "development owner" in doctor.check_pairing(unpaired, True).summary
    assert "nothing is recorded" in doctor.check_pairing(unpaired, False).summary
    assert doctor.check_consent(unpaired, NOW).status == PASS
    paired = DeviceView(owners=1, viewers=2, grants={})
    assert doctor.check_pairing(paired, False).status == PASS
    assert doctor.check_consent(paired, NOW).status == WARN  # paired but nothing may leave
    lasting = DeviceView(1, 0, {"events": None, "clips": NOW + 30 * DAY})
    ok = doctor.check_consent(lasting, NOW)
    assert ok.status == PASS and "events until revoked" in ok.summary
    soon = doctor.check_consent(DeviceView(1, 0, {"clips": NOW + 2 * DAY}), NOW)
    assert soon.status == WARN and "clips in 2.0 days" in soon.summary


def test_broker_check_settings_and_translated_failure(tmp_path: Path) -> None:
    assert doctor.check_broker(Config(), None, None, 1.0).status == PASS  # local only
    seen: list[Any] = []

    def ok(settings: Any, timeout_s: float) -> None:
        seen.append((settings, timeout_s))

    cfg = Config(mqtt=MqttConfig(url="mqtts://broker.example:8883", ca_file="~/ca.pem"))
    check = doctor.check_broker(cfg, None, "dw-abc", 2.5, ok)
    assert check.status == PASS and "TLS" in check.summary
    settings, timeout = seen[0]
    # never the daemon's own client id: the broker would disconnect a running daemon
    assert settings.client_id == "dw-abc-doctor" and settings.username == "dw-abc"
    assert settings.ca_file == Path("~/ca.pem").expanduser() and timeout == 2.5
    assert settings.will_topic is None  # the doctor leaves no "offline" behind
    doctor.check_broker(cfg, "mqtt://127.0.0.1:1884", None, 1.0, ok)
    assert seen[-1][0].url == "mqtt://127.0.0.1:1884"  # --broker overrides

    def refused(settings: Any, timeout_s: float) -> None:
        raise MqttTlsError("TLS handshake with broker.example:8883 failed: certificate verify "
                           "failed: check [mqtt] ca_file")

    failed = doctor.check_broker(cfg, None, "dw-abc", 1.0, refused)
    assert failed.status == FAIL and "ca_file" in failed.summary and failed.fix


def test_broker_probe_times_out_with_a_message() -> None:
    # a port that accepts TCP and never answers MQTT: the probe gives up after its timeout
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"mqtt://127.0.0.1:{server.getsockname()[1]}"
        check = doctor.check_broker(Config(mqtt=MqttConfig(url=url)), None, None, 0.5)
    assert check.status == FAIL and "within 0.5 s" in check.summary


def test_bucket_check(tmp_path: Path) -> None:
    assert doctor.check_bucket(Config(), 1.0).status == PASS  # not configured
    cfg = Config(s3=S3Config(bucket="doorbell", endpoint_url="http://127.0.0.1:9"))
    got: list[Any] = []
    assert doctor.check_bucket(cfg, 1.5, got.append).status == PASS
    assert got[0].max_attempts == 1 and got[0].connect_timeout_s == 1.5

    def denied(settings: Any) -> None:
        raise S3AuthError("LIST: InvalidAccessKeyId from http://127.0.0.1:9: check "
                          "AWS_ACCESS_KEY_ID")

    def missing(settings: Any) -> None:
        raise S3NotFound("LIST: bucket 'doorbell' does not exist")

    auth = doctor.check_bucket(cfg, 1.0, denied)
    assert auth.status == FAIL and "credentials" in auth.fix
    assert "create the bucket" in doctor.check_bucket(cfg, 1.0, missing).fix


def test_report_and_render() -> None:
    checks = [Check("camera", PASS, "sim"), Check("clock", WARN, "unknown", "run NTP"),
              Check("broker", FAIL, "refused", "fix the url")]
    doc = doctor.report(checks, None)
    assert doc["ok"] is False and doc["counts"] == {PASS: 1, WARN: 1, FAIL: 1}
    assert doc["checks"][2] == {"name": "broker", "status": FAIL, "summary": "refused",
                                "fix": "fix the url"}
    lines = doctor.render(checks)
    assert lines[0] == "PASS  camera  sim"
    assert "-> run NTP" in lines[2] and lines[-1] == "1 failure(s), 1 warning(s)"


def _args(tmp_path: Path, **kw: Any) -> argparse.Namespace:
    base = {"config": None, "data_dir": str(tmp_path / "data"), "source": "sim:porch",
            "broker": None, "timeout": 1.0, "json": True}
    return argparse.Namespace(**{**base, **kw})


def test_main_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.main(_args(tmp_path)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and [c["name"] for c in doc["checks"]][:3] == ["config", "camera", "gpio"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[nope]\n")
    assert doctor.main(_args(tmp_path, config=str(bad))) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"][0]["status"] == FAIL and "[nope]" in doc["checks"][0]["summary"]
