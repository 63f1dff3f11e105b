"""Buttons and LED through real gpiozero devices on MockFactory pins (gpiozero is never patched).

Mock pins ignore bounce_time and fire callbacks synchronously in the driving thread, so edge times
come from an injected clock and every timing assertion below is exact; only the LED's background
blinking runs in real time, and those tests wait on conditions with timeouts.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from agent.device.buttons import (
    ButtonEvent,
    DoorbellButtons,
    PressClassifier,
    SimulatedPress,
    StatusLed,
    make_pin_factory,
)
from agent.errors import DoorwardError
from tests.helpers import wait_for

RING, SETUP, LED_PIN = 17, 27, 22


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inbox() -> queue.Queue[ButtonEvent]:
    return queue.Queue()


@pytest.fixture
def buttons(factory: MockFactory, clock: FakeClock,
            inbox: queue.Queue[ButtonEvent]) -> Iterator[DoorbellButtons]:
    b = DoorbellButtons(RING, SETUP, pin_factory=factory, on_event=inbox.put, clock=clock)
    yield b
    b.close()


def drain(inbox: queue.Queue[ButtonEvent]) -> list[ButtonEvent]:
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


def advance(b: DoorbellButtons, clock: FakeClock, until: float, step: float = 0.05) -> None:
    """The daemon loop: tick every ``step`` s of injected time up to ``until``."""
    while clock.t < until:
        clock.t = min(round(clock.t + step, 9), until)
        b.tick(clock.t)


def hold(factory: MockFactory, pin: int, b: DoorbellButtons, clock: FakeClock, seconds: float,
         *, then: float = 1.0) -> None:
    start = clock.t
    factory.pin(pin).drive_low()
    advance(b, clock, start + seconds)
    factory.pin(pin).drive_high()
    advance(b, clock, start + seconds + then)


def test_ring_press_enqueues_one_ring(factory: MockFactory, buttons: DoorbellButtons,
                                      clock: FakeClock, inbox: queue.Queue[ButtonEvent]) -> None:
    factory.pin(RING).drive_low()
    assert drain(inbox) == []  # debounce: not yet stable
    clock.t += 0.03
    buttons.tick(clock.t)
    assert drain(inbox) == [ButtonEvent("ring", 1000.0)]


def test_ring_held_20_s_opens_nothing(factory: MockFactory, buttons: DoorbellButtons,
                                      clock: FakeClock, inbox: queue.Queue[ButtonEvent]) -> None:
    hold(factory, RING, buttons, clock, 20.0)
    assert [e.kind for e in drain(inbox)] == ["ring"]


def test_setup_3_s_pairs(factory: MockFactory, buttons: DoorbellButtons, clock: FakeClock,
                         inbox: queue.Queue[ButtonEvent]) -> None:
    hold(factory, SETUP, buttons, clock, 3.0)
    events = drain(inbox)
    assert [e.kind for e in events] == ["pair"]
    assert events[0].held_s == pytest.approx(3.0)


def test_setup_10_s_resets_while_held_and_never_pairs(
        factory: MockFactory, buttons: DoorbellButtons, clock: FakeClock,
        inbox: queue.Queue[ButtonEvent]) -> None:
    factory.pin(SETUP).drive_low()
    advance(buttons, clock, 1009.95)
    assert drain(inbox) == []
    advance(buttons, clock, 1010.0)
    assert drain(inbox) == [ButtonEvent("reset", 1010.0, held_s=10.0)]  # LED can confirm now
    advance(buttons, clock, 1012.0)
    factory.pin(SETUP).drive_high()
    advance(buttons, clock, 1013.0)
    assert drain(inbox) == []


def test_setup_1_s_is_only_logged(factory: MockFactory, buttons: DoorbellButtons,
                                  clock: FakeClock, inbox: queue.Queue[ButtonEvent]) -> None:
    hold(factory, SETUP, buttons, clock, 1.0, then=15.0)
    assert [e.kind for e in drain(inbox)] == ["setup-short"]


def test_contact_bounce_is_ignored(factory: MockFactory, buttons: DoorbellButtons,
                                   clock: FakeClock, inbox: queue.Queue[ButtonEvent]) -> None:
    pin = factory.pin(SETUP)
    for dt, level in [(0.0, 0), (0.004, 1), (0.004, 0)]:  # press bounces
        clock.t += dt
        pin.drive_low() if level == 0 else pin.drive_high()
    advance(buttons, clock, 1002.0)
    for dt, level in [(0.0, 1), (0.01, 0)]:  # a bounce mid-hold: not a release
        clock.t += dt
        pin.drive_low() if level == 0 else pin.drive_high()
    advance(buttons, clock, 1003.5)
    pin.drive_high()
    advance(buttons, clock, 1004.0)
    events = drain(inbox)
    assert [e.kind for e in events] == ["pair"]
    assert events[0].held_s == pytest.approx(3.5 - 0.008)


def test_closed_buttons_deliver_nothing(factory: MockFactory, clock: FakeClock,
                                        inbox: queue.Queue[ButtonEvent]) -> None:
    b = DoorbellButtons(RING, SETUP, pin_factory=factory, on_event=inbox.put, clock=clock)
    b.close()
    factory.pin(RING).drive_low()
    b.tick(clock.t + 1.0)
    b.close()  # idempotent
    assert drain(inbox) == []


def test_same_pin_twice_names_the_config_key(factory: MockFactory) -> None:
    with pytest.raises(DoorwardError, match=r"SETUP button.*\[gpio\] setup_pin"):
        DoorbellButtons(RING, RING, pin_factory=factory, on_event=lambda e: None)
    # The RING button it had opened was released again.
    DoorbellButtons(RING, SETUP, pin_factory=factory, on_event=lambda e: None).close()


@pytest.mark.parametrize(("button", "hold_s", "expected"), [
    ("ring", 0.0, ["ring"]), ("ring", 20.0, ["ring"]), ("setup", 3.5, ["pair"]),
    ("setup", 10.5, ["reset"]), ("setup", 1.0, ["setup-short"]),
])
def test_simulated_press_drives_the_real_button_path(
        factory: MockFactory, buttons: DoorbellButtons, clock: FakeClock,
        inbox: queue.Queue[ButtonEvent], button: str, hold_s: float, expected: list[str]) -> None:
    sim = SimulatedPress(factory, ring_pin=RING, setup_pin=SETUP)
    release_at = sim.press(button, hold_s, clock.t)
    assert sim.held == {button}
    while clock.t < release_at + 1.0:  # the daemon loop
        clock.t = round(clock.t + 1 / 15, 9)
        sim.tick(clock.t)
        buttons.tick(clock.t)
    assert sim.held == frozenset()
    assert [e.kind for e in drain(inbox)] == expected


def test_simulated_press_refuses_overlap_and_real_pins(factory: MockFactory) -> None:
    sim = SimulatedPress(factory, ring_pin=RING, setup_pin=SETUP)
    sim.press("setup", 3.0, 0.0)
    with pytest.raises(DoorwardError, match="already being pressed"):
        sim.press("setup", 1.0, 1.0)
    with pytest.raises(DoorwardError, match="need mock pins"):
        SimulatedPress(object(), ring_pin=RING, setup_pin=SETUP)


@pytest.fixture
def led(factory: MockFactory) -> Iterator[StatusLed]:
    s = StatusLed(LED_PIN, pin_factory=factory)
    factory.pin(LED_PIN).clear_states()
    yield s
    s.close()


def test_led_paired_is_solid_for_3_s(factory: MockFactory, led: StatusLed) -> None:
    led.paired(50.0)
    assert led.is_lit
    led.tick(52.99)
    assert led.is_lit
    led.tick(53.0)
    assert not led.is_lit
    assert [s.state for s in factory.pin(LED_PIN).states] == [False, True, False]


def test_led_pairing_blinks_quarter_seconds(factory: MockFactory, led: StatusLed) -> None:
    pin = factory.pin(LED_PIN)
    led.pairing()
    wait_for(lambda: len(pin.states) >= 6, timeout=5.0, what="5 LED changes")
    led.idle()
    states = pin.states
    assert [s.state for s in states[1:6]] == [True, False, True, False, True]
    # Each recorded timestamp is the time since the previous change: on and off last 0.25 s.
    for s in states[2:6]:  # never early; late by a loaded scheduler at most
        assert 0.2 <= s.timestamp <= 0.5
    assert not led.is_lit and states[-1].state is False


def test_led_reset_confirm_blinks_five_times_then_off(factory: MockFactory,
                                                      led: StatusLed) -> None:
    pin = factory.pin(LED_PIN)
    led.reset_confirm()
    wait_for(lambda: len(pin.states) >= 11, timeout=5.0, what="5 blinks")
    assert [s.state for s in pin.states[1:]] == [True, False] * 5
    assert not led.is_lit


def test_led_error_blinks_slowly_until_idle(factory: MockFactory, led: StatusLed) -> None:
    pin = factory.pin(LED_PIN)
    led.error()
    wait_for(lambda: len(pin.states) >= 3, timeout=5.0, what="one slow blink")
    assert 0.95 <= pin.states[2].timestamp <= 1.4  # lit for 1 s
    led.idle()
    assert not led.is_lit and led.pattern == "idle"


def test_led_pattern_change_cancels_paired_deadline(factory: MockFactory, led: StatusLed) -> None:
    led.paired(0.0)
    led.pairing()
    led.tick(10.0)  # the old deadline must not switch the new pattern off
    assert led.pattern == "pairing"
    led.idle()


def test_make_pin_factory_mock_and_unknown() -> None:
    assert isinstance(make_pin_factory("mock"), MockFactory)
    with pytest.raises(DoorwardError, match=r"unknown .* 'gpiochip9'.*lgpio"):
        make_pin_factory("gpiochip9")


def test_make_pin_factory_without_gpio_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    if Device.pin_factory is not None:
        pytest.skip("a global gpiozero pin factory is already set in this process")
    if os.path.exists("/dev/gpiochip0"):
        pytest.skip("this machine has GPIO")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(DoorwardError, match=r'no GPIO here: use a simulated source.*"mock"'):
        make_pin_factory(None)
    with pytest.raises(DoorwardError, match="'native' does not work here"):
        make_pin_factory("native")


def test_edges_from_another_thread_while_the_loop_ticks(factory: MockFactory) -> None:
    """gpiozero calls back on its own thread: edges and ticks interleave without loss or error."""
    inbox: queue.Queue[ButtonEvent] = queue.Queue()
    b = DoorbellButtons(RING, SETUP, pin_factory=factory, on_event=inbox.put,
                        classifier=PressClassifier(debounce_s=0.0))
    pin = factory.pin(RING)

    def presser() -> None:
        for _ in range(200):
            pin.drive_low()
            pin.drive_high()

    t = threading.Thread(target=presser)
    t.start()
    while t.is_alive():
        b.tick(time.monotonic())
    t.join()
    b.tick(time.monotonic())
    b.close()
    assert [e.kind for e in drain(inbox)] == ["ring"] * 200
