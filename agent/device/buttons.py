"""The doorbell's RING and SETUP buttons and its status LED, through gpiozero.

Three layers, so that the timing rules are testable without threads or real time:

* :class:`PressClassifier` is pure: feed it raw edges with their times (``pressed``,
  ``released``) and call ``tick(now)``; it returns :class:`ButtonEvent` items. It owns debounce
  and the hold thresholds.
* :class:`DoorbellButtons` wires two gpiozero ``Button`` devices to a classifier. gpiozero calls its
  callbacks on its own thread; they only feed the classifier and pass events to ``on_event``, which
  must only enqueue (``queue.Queue.put``). The daemon loop calls ``tick(now)`` between frames.
* :class:`StatusLed` shows the device state with one gpiozero ``LED``.
* :class:`SimulatedPress` drives the simulated pins (agent/device/sim_pins.py, or gpiozero's
  mock pins) in simulated mode, so ``doorward press`` (through the control socket,
  agent/runtime/control_socket.py) goes down the real button path.

Wiring in the daemon (the loop owns all state)::

    factory = make_pin_factory(cfg.gpio.pin_factory)          # "sim" in simulated mode
    inbox: queue.Queue[object] = queue.Queue()
    buttons = DoorbellButtons(17, 27, pin_factory=factory, on_event=inbox.put)
    led = StatusLed(22, pin_factory=factory)
    while running:
        now = time.monotonic()
        buttons.tick(now); led.tick(now)
        ... drain inbox: ButtonEvent "ring" -> ring clip, "pair" -> window + led.pairing(), ...

Timing rules (see :class:`PressClassifier`): a level change counts once it has been stable for
``debounce_s``; RING gives one ``ring`` per press however long it is held and never anything
else; SETUP gives ``setup-short`` (< 3 s, for logs), ``pair`` (3-10 s, on release) or ``reset``
(as soon as 10 s are reached while held). ``pair`` is emitted on release, not at 3 s, so that one
long hold is a reset only and never a pairing followed by a reset.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from agent.device.sim_pins import SimulatedPins
from agent.errors import DoorwardError

log = logging.getLogger(__name__)

ButtonName = Literal["ring", "setup"]
EventKind = Literal["ring", "pair", "setup-short", "reset"]
BUTTONS: tuple[ButtonName, ...] = ("ring", "setup")

# Injected float times such as 4.1 - 1.1 give 2.9999999999999996: a hold meant to be exactly at a
# threshold must count as reaching it. Real presses are never within a nanosecond of a threshold.
_EPS = 1e-9


@dataclass(frozen=True)
class ButtonEvent:
    """A classified press. ``t`` is when it happened (the press edge for ``ring``, the release
    edge for ``pair``/``setup-short``, press + reset threshold for ``reset``), in the clock the
    edges were fed with. ``held_s`` is how long SETUP was held (None for ``ring``)."""

    kind: EventKind
    t: float
    held_s: float | None = None


@dataclass
class _Level:
    """Debounce and hold state of one button (private, mutated only under the owner's lock)."""

    pending_press: float | None = None  # press edge not yet stable for debounce_s
    down_since: float | None = None  # confirmed press edge
    pending_release: float | None = None  # release edge while down, not yet stable
    reset_sent: bool = False


class PressClassifier:
    """Turns raw button edges into :class:`ButtonEvent` items; pure, time is always an argument.

    Debounce: a press counts once the button has stayed down for ``debounce_s`` (a shorter blip is
    noise, e.g. interference on the cable to the street-side RING button), and a release counts once
    it has stayed up for ``debounce_s``; a release followed by a press within ``debounce_s`` is a
    bounce and the hold goes on. Because confirmation waits for stability, events come out of the
    ``pressed``/``released``/``tick`` call made at or after the edge time + ``debounce_s`` (each
    call first settles both buttons up to ``now``): call ``tick(now)`` regularly (every frame is
    plenty). Events come out in time order, except that a press confirmed late may carry a time up
    to ``debounce_s`` before an event already returned.

    Not thread-safe: one owner, or a lock around every call (as :class:`DoorbellButtons` does).
    Buttons already down when the classifier starts are ignored until released (a button stuck at
    power-on must not factory-reset the device).
    """

    def __init__(self, debounce_s: float = 0.03, setup_pair_hold_s: float = 3.0,
                 setup_reset_hold_s: float = 10.0) -> None:
        if not 0.0 <= debounce_s < setup_pair_hold_s < setup_reset_hold_s:
            raise ValueError(
                "PressClassifier needs 0 <= debounce_s < setup_pair_hold_s < setup_reset_hold_s, "
                f"got {debounce_s}, {setup_pair_hold_s}, {setup_reset_hold_s}")
        self.debounce_s = debounce_s
        self.pair_hold_s = setup_pair_hold_s
        self.reset_hold_s = setup_reset_hold_s
        self._levels: dict[ButtonName, _Level] = {name: _Level() for name in BUTTONS}

    def pressed(self, button: str, now: float) -> list[ButtonEvent]:
        """A falling edge (button pushed) at ``now``; returns events that became due."""
        name = self._name(button)
        level = self._levels[name]
        events = self.tick(now)
        if level.down_since is not None:
            # Down and a release pending: that release was a bounce. Down without one: a repeated
            # edge (gpiozero can report the same level twice); either way the hold goes on.
            level.pending_release = None
        elif level.pending_press is None:
            level.pending_press = now
        return events

    def released(self, button: str, now: float) -> list[ButtonEvent]:
        """A rising edge (button let go) at ``now``; returns events that became due."""
        name = self._name(button)
        level = self._levels[name]
        events = self.tick(now)
        if level.pending_press is not None:
            level.pending_press = None  # down for less than debounce_s: noise
        elif level.down_since is not None and level.pending_release is None:
            level.pending_release = now
        return events

    def tick(self, now: float) -> list[ButtonEvent]:
        """Confirm edges stable for long enough; detect a SETUP hold reaching reset."""
        events: list[ButtonEvent] = []
        if self.idle:  # called every frame: most of them with both buttons up and no edge pending
            return events
        for name in BUTTONS:
            events.extend(self._settle(name, self._levels[name], now))
        events.sort(key=lambda ev: ev.t)
        return events

    @property
    def idle(self) -> bool:
        """Both buttons up with no edge pending: :meth:`tick` has nothing to confirm."""
        return all(level.pending_press is None and level.down_since is None
                   for level in self._levels.values())

    def _name(self, button: str) -> ButtonName:
        if button == "ring":
            return "ring"
        if button == "setup":
            return "setup"
        raise ValueError(f"unknown button {button!r}: use 'ring' or 'setup'")

    def _settle(self, name: ButtonName, level: _Level, now: float) -> list[ButtonEvent]:
        events: list[ButtonEvent] = []
        if level.pending_press is not None and now >= level.pending_press + self.debounce_s:
            level.down_since, level.pending_press = level.pending_press, None
            level.reset_sent = False
            if name == "ring":
                events.append(ButtonEvent("ring", level.down_since))
        if level.down_since is None or name == "ring":
            if level.pending_release is not None and now >= level.pending_release + self.debounce_s:
                level.down_since = level.pending_release = None
            return events
        held_until = now if level.pending_release is None else level.pending_release
        if not level.reset_sent and held_until - level.down_since + _EPS >= self.reset_hold_s:
            level.reset_sent = True
            events.append(ButtonEvent("reset", level.down_since + self.reset_hold_s,
                                      held_s=self.reset_hold_s))
        if level.pending_release is not None and now >= level.pending_release + self.debounce_s:
            events.extend(self._finish_setup(level, level.pending_release))
        return events

    def _finish_setup(self, level: _Level, released_at: float) -> list[ButtonEvent]:
        assert level.down_since is not None
        held = released_at - level.down_since
        events: list[ButtonEvent] = []
        if not level.reset_sent:  # a reset hold already said everything about this press
            kind: EventKind = "pair" if held + _EPS >= self.pair_hold_s else "setup-short"
            events.append(ButtonEvent(kind, released_at, held_s=held))
        level.down_since = level.pending_release = None
        level.reset_sent = False
        return events


class DoorbellButtons:
    """RING and SETUP as gpiozero ``Button`` devices (pull-up: pressed = low) feeding a classifier.

    ``on_event`` is called with each :class:`ButtonEvent`, from gpiozero's thread (press/release
    edges) or the caller's thread (``tick``), under an internal lock so events keep their order; it
    must only enqueue. ``clock`` timestamps the edges and must be the clock ``tick(now)`` is given
    (monotonic seconds). gpiozero's own ``bounce_time`` is off (mock pins ignore it and lgpio's
    differs per board): the classifier debounces, with times it is given.

    Holds are detected by ``tick(now)`` from the daemon loop rather than gpiozero's ``when_held``:
    one thread fewer, and the threshold logic stays in the pure classifier where tests drive it
    with injected times.
    """

    def __init__(self, ring_pin: int | str, setup_pin: int | str, *, pin_factory: Any,
                 on_event: Callable[[ButtonEvent], None],
                 clock: Callable[[], float] = time.monotonic,
                 classifier: PressClassifier | None = None) -> None:
        self._classifier = classifier if classifier is not None else PressClassifier()
        self._on_event = on_event
        self._clock = clock
        # Re-entrant so that an on_event that (against advice) drives a mock pin cannot deadlock.
        self._lock = threading.RLock()
        self._closed = False
        self._ring = _open_button("RING", "ring_pin", ring_pin, pin_factory)
        try:
            self._setup = _open_button("SETUP", "setup_pin", setup_pin, pin_factory)
        except BaseException:
            self._ring.close()
            raise
        self._ring.when_pressed = self._ring_pressed
        self._ring.when_released = self._ring_released
        self._setup.when_pressed = self._setup_pressed
        self._setup.when_released = self._setup_released

    def tick(self, now: float) -> None:
        """Call from the daemon loop (every frame): confirms debounced edges and SETUP holds."""
        with self._lock:
            if self._closed:
                return
            for event in self._classifier.tick(now):
                self._on_event(event)

    def close(self) -> None:
        """Release both pins (idempotent); no events are delivered afterwards."""
        with self._lock:  # an edge callback in flight on gpiozero's thread finishes first
            self._closed = True
        self._ring.close()
        self._setup.close()

    def _edge(self, button: ButtonName, down: bool) -> None:
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            if down:
                events = self._classifier.pressed(button, now)
            else:
                events = self._classifier.released(button, now)
            for event in events:
                self._on_event(event)

    # gpiozero inspects the callback's arity: these take no argument.
    def _ring_pressed(self) -> None:
        self._edge("ring", True)

    def _ring_released(self) -> None:
        self._edge("ring", False)

    def _setup_pressed(self) -> None:
        self._edge("setup", True)

    def _setup_released(self) -> None:
        self._edge("setup", False)


def _open_button(label: str, key: str, pin: int | str, pin_factory: Any) -> Any:
    if isinstance(pin_factory, SimulatedPins):
        try:
            return pin_factory.button(pin)
        except ValueError as err:
            raise DoorwardError(f"cannot use GPIO pin {pin!r} for the {label} button: {err}; "
                                f"set [gpio] {key} to a free GPIO pin") from err
    from gpiozero import Button, GPIOZeroError  # only with real or gpiozero's mock pins

    try:
        return Button(pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
    except GPIOZeroError as err:
        raise DoorwardError(
            f"cannot use GPIO pin {pin!r} for the {label} button: {err}; "
            f"set [gpio] {key} to a free GPIO pin") from err


class StatusLed:
    """The status LED. Call one pattern method per state change and ``tick(now)`` from the loop.

    Patterns: ``idle()`` off; ``pairing()`` blinks 0.25 s on / 0.25 s off until changed;
    ``paired(now)`` solid, then off at ``now + 3 s`` (switched off by ``tick``: no timer thread,
    testable with injected times); ``reset_confirm()`` 5 fast blinks then off; ``error()`` slow
    1 s / 1 s blink until changed. Blinking runs in gpiozero's background thread; every pattern
    call replaces the previous one. Use from one thread (the daemon loop).
    """

    PAIRING_BLINK_S = 0.25
    PAIRED_SOLID_S = 3.0
    RESET_BLINK_S = 0.1
    RESET_BLINKS = 5
    ERROR_BLINK_S = 1.0

    def __init__(self, pin: int | str, *, pin_factory: Any) -> None:
        self._led = open_output("the status LED", "led_pin", pin, pin_factory, led=True)
        self._off_at: float | None = None
        self.pattern = "idle"

    def idle(self) -> None:
        self._set("idle")
        self._led.off()

    def pairing(self) -> None:
        self._set("pairing")
        self._led.blink(on_time=self.PAIRING_BLINK_S, off_time=self.PAIRING_BLINK_S, n=None,
                        background=True)

    def paired(self, now: float) -> None:
        self._set("paired")
        self._led.on()
        self._off_at = now + self.PAIRED_SOLID_S

    def reset_confirm(self) -> None:
        self._set("reset-confirm")
        self._led.blink(on_time=self.RESET_BLINK_S, off_time=self.RESET_BLINK_S,
                        n=self.RESET_BLINKS, background=True)

    def error(self) -> None:
        self._set("error")
        self._led.blink(on_time=self.ERROR_BLINK_S, off_time=self.ERROR_BLINK_S, n=None,
                        background=True)

    def tick(self, now: float) -> None:
        """Ends the ``paired`` pattern once its 3 s are up."""
        if self._off_at is not None and now >= self._off_at:
            self.idle()

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    def close(self) -> None:
        self._off_at = None
        self._led.close()

    def _set(self, pattern: str) -> None:
        self.pattern = pattern
        self._off_at = None


def open_output(label: str, key: str, pin: int | str, pin_factory: Any, *,
                 led: bool, fix: str = "a free GPIO pin") -> Any:
    """gpiozero's ``LED`` (``led``) or ``OutputDevice`` (off) on ``pin``, or a simulated output;
    a pin that cannot be used is a DoorwardError naming the config key."""
    try:
        if isinstance(pin_factory, SimulatedPins):
            return pin_factory.output(pin)
        from gpiozero import LED, GPIOZeroError, OutputDevice  # only with gpiozero's pins
    except ValueError as err:
        raise DoorwardError(f"cannot use GPIO pin {pin!r} for {label}: {err}; "
                            f"set [gpio] {key} to {fix}") from err
    try:
        if led:
            return LED(pin, pin_factory=pin_factory)
        return OutputDevice(pin, initial_value=False, pin_factory=pin_factory)
    except GPIOZeroError as err:
        raise DoorwardError(f"cannot use GPIO pin {pin!r} for {label}: {err}; "
                            f"set [gpio] {key} to {fix}") from err


def simulated_pins(pin_factory: Any) -> bool:
    """True for pins that ``doorward press`` can drive: ours (SimulatedPins) or gpiozero's
    ``MockFactory`` (without importing gpiozero when it is not loaded)."""
    if isinstance(pin_factory, SimulatedPins):
        return True
    if "gpiozero.pins.mock" not in sys.modules:
        return False
    from gpiozero.pins.mock import MockFactory

    return isinstance(pin_factory, MockFactory)


_NO_GPIO_FIX = ('use a simulated source, which uses simulated pins, or set [gpio] pin_factory = '
                '"mock"')


def make_pin_factory(name: str | None, *, work_dir: os.PathLike[str] | str | None = None) -> Any:
    """The gpiozero pin factory to pass to every device.

    ``"sim"``: fresh :class:`~agent.device.sim_pins.SimulatedPins` (simulated sources: no
    gpiozero). ``"mock"``: a fresh gpiozero ``MockFactory`` (tests of the gpiozero adapter, or
    ``[gpio] pin_factory = "mock"``). ``None``: gpiozero's default (on a
    Pi: lgpio, then RPi.GPIO, pigpio, native; ``GPIOZERO_PIN_FACTORY`` is honoured). Any other
    name: that gpiozero factory (``lgpio``, ``rpigpio``, ``pigpio``, ``native``). Failures raise
    :class:`DoorwardError` naming the fix. Before lgpio can load, ``LG_WD`` is set if unset (see
    :func:`ensure_lgpio_work_dir`; ``work_dir`` is the last resort, e.g. the data directory).
    """
    if name == "sim":
        return SimulatedPins()
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name in (None, "lgpio"):
        ensure_lgpio_work_dir(os.environ, work_dir)
    if name is None:
        return _default_factory()
    from importlib.metadata import entry_points  # 1-3 MB of modules (email's parser): not on
    # the simulated path

    factories = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    ep = factories.get(name, factories.get(name.lower()))
    if ep is None:
        raise DoorwardError(f"unknown [gpio] pin_factory = {name!r}: use one of "
                            f"{', '.join(sorted(factories))}, or leave it unset for the default")
    from gpiozero import GPIOZeroError

    try:
        return ep.load()()
    except (GPIOZeroError, ImportError, OSError, RuntimeError) as err:
        raise DoorwardError(
            f"[gpio] pin_factory = {name!r} does not work here ({type(err).__name__}: {err}): on a "
            f"Raspberry Pi 5 only \"lgpio\" works; without GPIO, {_NO_GPIO_FIX}") from err


def ensure_lgpio_work_dir(environ: MutableMapping[str, str],
                          fallback: os.PathLike[str] | str | None) -> str | None:
    """Set ``LG_WD`` in ``environ`` when unset, before gpiozero imports lgpio; returns its value.

    lgpio (the only pin factory that works on a Pi 5) creates its notification FIFO
    (``.lgd-nfy*``) in ``$LG_WD``, else in the current directory, which for a service is ``/`` or
    read-only under ``ProtectSystem=strict``: button callbacks then silently never fire. The
    library reads the variable when it is imported, so this must run first. Order: an existing
    ``LG_WD`` (the unit sets ``%t/doorward``); systemd's ``RUNTIME_DIRECTORY`` (first entry);
    ``fallback``. With none of them, nothing is set (a developer's shell: the current directory).
    """
    if environ.get("LG_WD"):
        return environ["LG_WD"]
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    chosen = runtime or (os.fspath(fallback) if fallback is not None else "")
    if not chosen:
        return None
    environ["LG_WD"] = chosen
    log.debug("LG_WD=%s (lgpio's working directory)", chosen)
    return chosen


def _default_factory() -> Any:
    from gpiozero import Device, GPIOZeroError

    # gpiozero warns once per factory it falls back from; collect them to explain a failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except (GPIOZeroError, ImportError) as err:
            tried = "; ".join(str(w.message) for w in caught)
            raise DoorwardError(f"no GPIO here: {_NO_GPIO_FIX} (gpiozero: {err} {tried})") from err
    for w in caught:
        log.info("gpiozero: %s", w.message)
    return Device.pin_factory


class SimulatedPress:
    """Presses the daemon's own mock buttons, so ``doorward press`` exercises the real button path.

    ``press(button, hold_s, now)`` drives the button's mock pin low (pull-up: pressed) at once;
    ``tick(now)`` from the daemon loop drives it high again at the first tick at or after
    ``now + hold_s`` (so a hold is never shorter than asked; a hold within one loop period of a
    threshold may count as the longer hold). Holds shorter than ``MIN_HOLD_S`` are lengthened to
    it, since the debounce treats a shorter press as noise. ``now`` must be in the clock that
    DoorbellButtons uses (monotonic seconds).
    """

    MIN_HOLD_S = 0.1

    def __init__(self, pin_factory: Any, *, ring_pin: int | str, setup_pin: int | str) -> None:
        if not simulated_pins(pin_factory):
            raise DoorwardError("simulated button presses need mock pins: use a simulated source "
                                'or set [gpio] pin_factory = "mock"')
        self._pins: dict[str, Any] = {"ring": pin_factory.pin(ring_pin),
                                      "setup": pin_factory.pin(setup_pin)}
        self._release_at: dict[str, float] = {}

    def press(self, button: str, hold_s: float, now: float) -> float:
        """Start a press; returns when it will be released. DoorwardError if already held."""
        if button not in self._pins:
            raise ValueError(f"unknown button {button!r}: use 'ring' or 'setup'")
        if button in self._release_at:
            raise DoorwardError(f"{button} is already being pressed (until "
                                f"{self._release_at[button] - now:.1f} s from now): try again then")
        release_at = now + max(hold_s, self.MIN_HOLD_S)
        self._release_at[button] = release_at
        self._pins[button].drive_low()
        return release_at

    def tick(self, now: float) -> None:
        if not self._release_at:  # every frame, nearly always with nothing held
            return
        for button, due in list(self._release_at.items()):
            if now >= due:
                del self._release_at[button]
                self._pins[button].drive_high()

    @property
    def held(self) -> frozenset[str]:
        """Buttons currently held down by a simulated press."""
        return frozenset(self._release_at)
