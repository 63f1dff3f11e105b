"""Simulated pins (agent/device/sim_pins.py): the daemon's buttons, LED and IR output for simulated
sources, without gpiozero. The gpiozero adapter itself is tested on gpiozero's MockFactory in
tests/integration/test_buttons.py; these run the same button paths on SimulatedPins."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import build_gpio
from agent.camera.sources import parse_source
from agent.config import Config, GpioConfig
from agent.device.buttons import (
    ButtonEvent,
    DoorbellButtons,
    SimulatedPress,
    StatusLed,
    make_pin_factory,
    simulated_pins,
)
from agent.device.ir_light import IrLight
from agent.device.sim_pins import SimulatedPins
from agent.errors import DoorwardError
from tests.integration.test_buttons import FakeClock, advance, drain

RING, SETUP, LED_PIN, IR_PIN = 17, 27, 22, 23
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pins() -> SimulatedPins:
    return SimulatedPins()


@pytest.fixture
def inbox() -> queue.Queue[ButtonEvent]:
    return queue.Queue()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def buttons(pins: SimulatedPins, inbox: queue.Queue[ButtonEvent],
            clock: FakeClock) -> Iterator[DoorbellButtons]:
    b = DoorbellButtons(RING, SETUP, pin_factory=pins, on_event=inbox.put, clock=clock)
    yield b
    b.close()


def test_ring_and_setup_holds_classify_as_with_gpiozero(
        pins: SimulatedPins, inbox: queue.Queue[ButtonEvent]) -> None:
    clock = FakeClock()
    b = DoorbellButtons(RING, SETUP, pin_factory=pins, on_event=inbox.put, clock=clock)
    pins.pin(RING).drive_low()
    assert drain(inbox) == []  # debounce: not yet stable
    advance(b, clock, 1000.03)
    assert drain(inbox) == [ButtonEvent("ring", 1000.0)]
    pins.pin(RING).drive_high()
    for seconds, kind in ((3.5, "pair"), (10.5, "reset"), (1.0, "setup-short")):
        start = clock.t
        pins.pin(SETUP).drive_low()
        advance(b, clock, start + seconds)
        pins.pin(SETUP).drive_high()
        advance(b, clock, start + seconds + 1.0)
        assert [e.kind for e in drain(inbox)] == [kind]
    b.close()
    pins.pin(RING).drive_low()
    advance(b, clock, clock.t + 1.0)
    assert drain(inbox) == []  # closed: nothing more


def test_simulated_press_drives_the_button_path(
        pins: SimulatedPins, buttons: DoorbellButtons, clock: FakeClock,
        inbox: queue.Queue[ButtonEvent]) -> None:
    sim = SimulatedPress(pins, ring_pin=RING, setup_pin=SETUP)
    release_at = sim.press("setup", 3.5, clock.t)
    while clock.t < release_at + 1.0:  # the daemon loop
        clock.t = round(clock.t + 1 / 15, 9)
        sim.tick(clock.t)
        buttons.tick(clock.t)
    assert [e.kind for e in drain(inbox)] == ["pair"]


def test_a_pin_used_twice_names_the_config_key(pins: SimulatedPins) -> None:
    with pytest.raises(DoorwardError, match=r"SETUP button.*\[gpio\] setup_pin"):
        DoorbellButtons(RING, RING, pin_factory=pins, on_event=lambda e: None)
    DoorbellButtons(RING, SETUP, pin_factory=pins, on_event=lambda e: None).close()  # released
    StatusLed(LED_PIN, pin_factory=pins)
    with pytest.raises(DoorwardError, match=r"IR LED.*\[gpio\] ir_led_pin"):
        IrLight(LED_PIN, pin_factory=pins, on_below_lux=1.0, off_above_lux=5.0)


def test_led_and_ir_outputs(pins: SimulatedPins) -> None:
    led = StatusLed(LED_PIN, pin_factory=pins)
    led.paired(0.0)
    assert led.is_lit
    led.tick(3.0)
    assert not led.is_lit and led.pattern == "idle"
    led.pairing()
    assert led.is_lit  # blinking for ever reads as lit
    led.reset_confirm()
    assert not led.is_lit  # five blinks, then off
    ir = IrLight(IR_PIN, pin_factory=pins, on_below_lux=1.0, off_above_lux=5.0)
    assert ir.update(0.5) and ir.state == "on"
    assert ir.update(6.0) and ir.state == "off"


def test_simulated_sources_get_simulated_pins_and_the_daemon_no_gpiozero() -> None:
    gpio = build_gpio(Config(), parse_source("sim:porch"), queue.Queue())
    assert type(gpio.buttons._ring).__name__ == "SimButton" and gpio.sim_press is not None
    assert isinstance(make_pin_factory("sim"), SimulatedPins)
    mock = make_pin_factory("mock")  # gpiozero's own, when the config asks for it
    assert simulated_pins(mock) and not isinstance(mock, SimulatedPins)
    gpio = build_gpio(Config(gpio=GpioConfig(pin_factory="mock")), parse_source("sim:porch"),
                      queue.Queue())
    assert type(gpio.buttons._ring).__name__ == "Button" and gpio.sim_press is not None
    code = ("import sys, agent.app, agent.cli; "
            "print('gpiozero' in sys.modules, 'agent.camera.sim.render' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["False", "False"]
