"""Camera settings from [camera] reach picamera2 (the fake, tests/fakes) as libcamera expects
them, and the IR LED follows the camera's light level with hysteresis (gpiozero mock pins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.app import build_camera, build_gpio
from agent.camera.picam import PiCamera, PiSettings
from agent.camera.sources import parse_source
from agent.config import parse_config
from agent.device.ir_light import IrLight
from agent.errors import CameraError
from tests.fakes import install
from tests.fakes.camera_hw import FakeHardware


@pytest.fixture
def hw(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHardware]:
    yield from install(monkeypatch)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def opened_config(hw: FakeHardware, cam: PiCamera) -> dict[str, Any]:
    with cam:
        config: dict[str, Any] = hw.cameras[0].camera_config  # type: ignore[attr-defined]
    return config


@pytest.mark.parametrize(("toml", "flips"), [
    ("", (0, 0)),
    ("rotation = 180", (1, 1)),
    ("hflip = true", (1, 0)),
    ("vflip = true", (0, 1)),
    ("rotation = 180\nhflip = true", (0, 1)),  # upside down and mirrored: only vflip remains
])
def test_rotation_and_flips_become_a_libcamera_transform(
        hw: FakeHardware, toml: str, flips: tuple[int, int]) -> None:
    cfg = parse_config(f"[camera]\nsource = 'picamera2'\n{toml}\n")
    cam = build_camera(cfg, parse_source("picamera2"), realtime=False, loop=False)
    assert isinstance(cam, PiCamera)
    transform = opened_config(hw, cam)["transform"]
    assert (transform.hflip, transform.vflip) == flips


@pytest.mark.parametrize(("mode", "value"), [("normal", 0), ("short", 1), ("long", 2)])
def test_exposure_mode_is_the_ae_exposure_mode_control(hw: FakeHardware, mode: str,
                                                       value: int) -> None:
    controls = opened_config(hw, PiCamera(settings=PiSettings(exposure_mode=mode)))["controls"]
    assert controls["AeExposureMode"] == value and controls["FrameRate"] == 15.0


def test_a_noir_tuning_file_is_loaded_and_passed_to_the_camera(hw: FakeHardware) -> None:
    opened_config(hw, PiCamera(settings=PiSettings(tuning_file="imx219_noir.json")))
    assert hw.tunings[-1] == {"version": 2.0, "target": "bcm2835", "file": "imx219_noir.json"}
    opened_config(hw, PiCamera())
    assert hw.tunings[-1] is None  # no tuning_file: the sensor's own


def test_a_missing_tuning_file_names_the_key_and_opens_nothing(hw: FakeHardware) -> None:
    with pytest.raises(CameraError) as err:
        PiCamera(settings=PiSettings(tuning_file="imx219_noire.json")).open()
    assert "camera.tuning_file = 'imx219_noire.json'" in str(err.value)
    assert "imx219_noir.json" in str(err.value)
    assert hw.opened == 0


def test_the_light_level_of_each_frame_is_kept(hw: FakeHardware) -> None:
    hw.lux = 3.5
    with PiCamera() as cam:
        next(iter(cam.frames()))
        assert cam.light_lux == 3.5


def test_ir_led_switches_with_hysteresis(factory: MockFactory) -> None:
    ir = IrLight(23, pin_factory=factory, on_below_lux=5.0, off_above_lux=20.0)
    pin = factory.pin(23)
    readings = [100, 6, 4.9, 10, 19.9, 20, 20.1, 19, 4, None]
    states = []
    for lux in readings:
        ir.update(lux)
        states.append(ir.state)
    assert states == ["off", "off", "on", "on", "on", "on", "off", "off", "on", "on"]
    assert pin.state is True
    ir.close()


def test_build_gpio_adds_the_ir_led_only_when_configured(factory: MockFactory) -> None:
    import queue

    spec = parse_source("sim:porch")
    assert build_gpio(parse_config(""), spec, queue.Queue(), pin_factory=factory).ir is None
    factory.reset()
    cfg = parse_config("[gpio]\nir_led_pin = 23\n[camera]\nir_on_below_lux = 2\n")
    gpio = build_gpio(cfg, spec, queue.Queue(), pin_factory=factory)
    assert gpio.ir is not None and gpio.ir.on_below_lux == 2.0 and gpio.ir.state == "off"


def test_status_shows_the_ir_led(tmp_path: Any) -> None:
    from agent.runtime.status_file import StatusFile
    from agent.tools.status_report import status_document, status_lines

    sf = StatusFile(tmp_path)
    sf.update(running=True, pid=__import__("os").getpid(), state="running", source="picamera2",
              last_frame_at=1_800_000_000.0, frames=10, ir_led="on")
    sf.flush(force=True)
    doc = status_document(tmp_path, max_bytes=10**8, broker_configured=False,
                          bucket_configured=False, now=1_800_000_001.0)
    assert doc["camera"]["ir_led"] == "on"
    assert "IR LED on" in "\n".join(status_lines(doc, 1_800_000_001.0))
