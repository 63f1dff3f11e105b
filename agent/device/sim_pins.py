"""Simulated pins for simulated sources: the buttons, LED and IR output without gpiozero.

Usage (``agent.device.buttons.make_pin_factory("sim")`` returns one; the daemon uses it for
``sim:``, ``file:`` and ``v4l2:`` sources unless ``[gpio] pin_factory`` names another)::

    pins = SimulatedPins()
    buttons = DoorbellButtons(17, 27, pin_factory=pins, on_event=inbox.put)  # pins.button(17)...
    pins.pin(17).drive_low()       # RING pressed: the button's when_pressed runs, at once
    pins.pin(17).drive_high()      # released

Why: gpiozero's ``__init__`` imports every device class it has (about 4-5 MB of the daemon's
memory), and a simulated source has no pins to drive. This implements just what
:class:`~agent.device.buttons.DoorbellButtons`, :class:`~agent.device.buttons.StatusLed` and
:class:`~agent.device.ir_light.IrLight` use of gpiozero's ``Button``, ``LED`` and
``OutputDevice``, with the same pull-up convention (a button is pressed when its pin is low).
Callbacks run on the thread that drives the pin, as gpiozero's mock pins do. The real gpiozero
adapter stays tested with gpiozero's own ``MockFactory`` (``[gpio] pin_factory = "mock"``).
An LED's blinking is not animated: a pattern that blinks for ever reads as lit, a pattern of n
blinks as off (how it ends).
"""

from __future__ import annotations

from collections.abc import Callable

Callback = Callable[[], None]


class SimPin:
    """One simulated input pin, pulled up (high) until driven low."""

    def __init__(self, number: int | str) -> None:
        self.number = number
        self.high = True
        self._listeners: list[Callable[[bool], None]] = []

    def drive_low(self) -> None:
        self._set(False)

    def drive_high(self) -> None:
        self._set(True)

    def _set(self, high: bool) -> None:
        if high == self.high:
            return
        self.high = high
        for listen in list(self._listeners):
            listen(high)


class _Claimed:
    def __init__(self, pins: SimulatedPins, number: int | str) -> None:
        self._pins, self._number, self.closed = pins, number, False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pins.release(self._number)


class SimButton(_Claimed):
    """What DoorbellButtons uses of gpiozero's ``Button(pin, pull_up=True)``."""

    def __init__(self, pins: SimulatedPins, number: int | str) -> None:
        super().__init__(pins, number)
        self.when_pressed: Callback | None = None
        self.when_released: Callback | None = None
        self._pin = pins.pin(number)
        self._pin._listeners.append(self._changed)

    @property
    def is_pressed(self) -> bool:
        return not self._pin.high

    def _changed(self, high: bool) -> None:
        callback = self.when_released if high else self.when_pressed
        if callback is not None and not self.closed:
            callback()

    def close(self) -> None:
        if self._changed in self._pin._listeners:
            self._pin._listeners.remove(self._changed)
        super().close()


class SimOutput(_Claimed):
    """What StatusLed and IrLight use of gpiozero's ``LED`` and ``OutputDevice``."""

    def __init__(self, pins: SimulatedPins, number: int | str) -> None:
        super().__init__(pins, number)
        self.is_lit = False

    @property
    def value(self) -> bool:
        return self.is_lit

    def on(self) -> None:
        self.is_lit = True

    def off(self) -> None:
        self.is_lit = False

    def blink(self, on_time: float = 1.0, off_time: float = 1.0, n: int | None = None,
              background: bool = True) -> None:
        self.is_lit = n is None  # not animated: for ever reads as lit, n blinks end off


class SimulatedPins:
    """A pin factory for simulated sources; each pin number can be claimed by one device (a
    second claim raises ValueError, which the devices' wrappers turn into a DoorwardError)."""

    def __init__(self) -> None:
        self._pins: dict[int | str, SimPin] = {}
        self._claimed: set[int | str] = set()

    def pin(self, number: int | str) -> SimPin:
        """The pin ``number`` (made on first use), to drive as a button would."""
        return self._pins.setdefault(number, SimPin(number))

    def button(self, number: int | str) -> SimButton:
        self._claim(number)
        return SimButton(self, number)

    def output(self, number: int | str) -> SimOutput:
        self._claim(number)
        return SimOutput(self, number)

    def release(self, number: int | str) -> None:
        self._claimed.discard(number)

    def _claim(self, number: int | str) -> None:
        if number in self._claimed:
            raise ValueError(f"simulated pin {number!r} is already in use")
        self._claimed.add(number)
