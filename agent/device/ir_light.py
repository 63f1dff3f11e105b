"""The IR illuminator: an output pin switched by the camera's light estimate, with hysteresis.

A NoIR camera module sees in the dark only with infrared LEDs; they should light when the porch
goes dark and not flicker at dusk. :class:`IrLight` turns its pin on when the light level falls
below ``on_below_lux`` and off when it rises above ``off_above_lux`` (``off_above_lux`` must be
higher: the gap absorbs both noise and the LEDs' own light, which the sensor sees too).

Wiring (agent/app.py): ``IrLight(cfg.gpio.ir_led_pin, pin_factory=factory, on_below_lux=...,
off_above_lux=...)``, then ``update(lux)`` from the loop thread after each frame with the
camera's estimate (picamera2's ``Lux`` metadata; None from sources that have none, which leaves
the LED as it is). ``state`` ("on" or "off") goes into status.json and ``doorward status``.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import DoorwardError

log = logging.getLogger(__name__)


class IrLight:
    """An IR LED switch on ``pin`` (gpiozero's OutputDevice on ``pin_factory``); starts off."""

    def __init__(self, pin: int, *, pin_factory: Any, on_below_lux: float,
                 off_above_lux: float) -> None:
        if not on_below_lux < off_above_lux:
            raise DoorwardError(f"IR LED: on_below_lux {on_below_lux:g} must be lower than "
                                f"off_above_lux {off_above_lux:g}")
        from agent.device.buttons import open_output

        self._out = open_output("the IR LED", "ir_led_pin", pin, pin_factory, led=False,
                                 fix="a free GPIO pin, or -1 for none")
        self.on_below_lux, self.off_above_lux = on_below_lux, off_above_lux
        self.lit = False
        self.last_lux: float | None = None

    @property
    def state(self) -> str:
        return "on" if self.lit else "off"

    def update(self, lux: float | None) -> bool:
        """Follow the light level ``lux``; True when the LED was switched."""
        if lux is None:
            return False
        self.last_lux = lux
        want = lux < self.on_below_lux if not self.lit else lux <= self.off_above_lux
        if want == self.lit:
            return False
        self.lit = want
        if want:
            self._out.on()
        else:
            self._out.off()
        log.info("IR LED %s (light %.1f lux)", self.state, lux,
                 extra={"fields": {"ir_led": self.state, "lux": round(lux, 1)}})
        return True

    def close(self) -> None:
        """Switch off and release the pin."""
        self._out.close()
