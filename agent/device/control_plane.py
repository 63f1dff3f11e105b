"""The device's control plane: buttons, LED, pairing window, owner commands, factory reset.

Owned by the daemon loop's thread, like the pipeline. Everything that arrives from other threads
(gpiozero edges, paho messages, the control socket, the delivery lanes' reports) is only
*enqueued* on ``inbox``; :meth:`tick` drains it between frames, so every decision runs on one
thread with no locks around state. What the controller does not handle itself (the lanes'
reports) goes to the handler registered for its type, so this module knows nothing of delivery.
A message from the broker is acknowledged to it once handled (the client's ``manual_ack``), so
one on the inbox when the daemon dies comes again when its session resumes.

Wiring (see agent.app)::

    ctl = DeviceController(open_device_state(data_dir), inbox=q, buttons=..., led=..., mqtt=...,
                           on_ring=ring, on_factory_reset=wipe_local_data, hooks=UplinkHooks(...))
    ctl.handle(ClipDelivered, reports.on_delivered)   # other threads' reports, by type
    ctl.start()
    ...  each frame: ctl.tick()
    ctl.close()
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agent.device.buttons import ButtonEvent, DoorbellButtons, StatusLed
from agent.device.consent import SCOPES as CONSENT_SCOPES
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor
from agent.device.pairing_window import Decision, PairingWindow
from agent.errors import DoorwardError
from agent.paths import DataDir
from uplink import (
    ConnectionEvent,
    DevicePairing,
    ForeignMessage,
    InboundMessage,
    MqttError,
    MqttPort,
    PairingConfirm,
    PairingHello,
    PairingMessage,
    UplinkError,
    decode_pairing,
    device_topic,
    encode_pairing,
    key_id_for,
)

log = logging.getLogger("doorward")

MAX_INBOX_PER_TICK = 64  # bound the work between two frames; the rest waits for the next tick
REJECTION_FLUSH_S = 60.0


@dataclass(frozen=True)
class ControlPress:
    """A ``doorward press`` request from the control socket."""

    button: str
    hold_s: float


def topics(device_id: str) -> dict[str, str]:
    return {"pair_in": device_topic(device_id, "pair", "owner"),
            "pair_out": device_topic(device_id, "pair", "device"),
            "cmd": device_topic(device_id, "cmd"), "resp": device_topic(device_id, "resp"),
            "status": device_topic(device_id, "status")}


@dataclass
class UplinkHooks:
    """How the controller tells the uplink what happened (all optional, all on the loop thread).

    ``command_guard`` wraps command handling (the outbox worker pauses, so nothing of a scope
    leaves after its revocation commits); ``on_revoked`` purges what is queued under the scopes;
    ``on_connected`` runs on every (re)connection; ``on_connection`` hears every connection event
    (the delivery side records the broker's link from them); ``on_changed`` runs after every
    accepted owner command and a factory reset (consent or settings may have changed).
    """

    command_guard: Callable[[], AbstractContextManager[Any]] = nullcontext
    on_revoked: Callable[[list[str]], None] = lambda scopes: None
    on_connected: Callable[[], None] = lambda: None
    on_connection: Callable[[ConnectionEvent], None] = lambda event: None
    on_changed: Callable[[], None] = lambda: None


@dataclass
class DeviceState:
    """The device's durable parts, opened on the loop's thread."""

    identity: DeviceIdentity
    consent: ConsentStore
    ledger: Ledger
    processor: CommandProcessor
    db: DeviceDB


def open_device_state(data_dir: Path) -> DeviceState:
    """The device identity and its durable state (device.sqlite), opened on this thread."""
    identity = DeviceIdentity.load_or_create(data_dir)
    db = DeviceDB(DataDir(data_dir).device_db)
    consent = ConsentStore(db)
    ledger = Ledger(db, identity.key)
    processor = CommandProcessor(db, consent, ledger, identity.device_id, identity.key)
    return DeviceState(identity, consent, ledger, processor, db)


class Presser(Protocol):
    """Simulated buttons (gpiozero's mock pins) pressed by ``doorward press``."""

    def press(self, button: str, hold_s: float, now: float) -> object: ...

    def tick(self, now: float) -> None: ...


T = TypeVar("T")


class DeviceController:
    """Turns queued inputs into pairing, commands, rings and resets. See the module docstring."""

    def __init__(self, state: DeviceState, *, inbox: queue.Queue[Any],
                 buttons: DoorbellButtons | None, led: StatusLed | None,
                 sim_press: Presser | None, mqtt: MqttPort | None,
                 on_ring: Callable[[], None], on_factory_reset: Callable[[], dict[str, Any]],
                 on_paired: Callable[[], object] = lambda: None,
                 window: PairingWindow | None = None,
                 hooks: UplinkHooks | None = None,
                 wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.inbox = inbox
        self.buttons, self.led, self.sim_press, self.mqtt = buttons, led, sim_press, mqtt
        self.on_ring, self.on_factory_reset = on_ring, on_factory_reset
        self.on_paired = on_paired  # retires the development owner (agent.runtime.handover)
        self.window = window or PairingWindow()
        self.hooks = hooks or UplinkHooks()
        self.wall, self.mono = wall, mono
        self.topics = topics(state.identity.device_id)
        self._device_pairing = DevicePairing(
            state.identity.device_id, state.identity.key, state.identity.setup_secret)
        self._next_flush = 0.0
        self._window_was_open = False
        self.last_pairing: str = ""
        self._handlers: dict[type, Callable[[Any], None]] = {}
        self._routes: dict[str, Callable[[bytes], bytes | None]] = {}

    def handle(self, kind: type[T], handler: Callable[[T], None]) -> None:
        """Items of type ``kind`` found on the inbox go to ``handler`` (on the loop thread)."""
        self._handlers[kind] = handler

    def route(self, topic: str, handler: Callable[[bytes], bytes | None],
              reply_topic: str) -> None:
        """Messages on ``topic`` go to ``handler`` (on the loop thread, before :meth:`start`);
        what it returns is published on ``reply_topic`` (e.g. footage requests, issue 16)."""
        def run(payload: bytes) -> bytes | None:
            out = handler(payload)
            if out is not None:
                self._publish(reply_topic, out)
            return out
        self._routes[topic] = run

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.mqtt is not None:
            self.mqtt.subscribe(self.topics["pair_in"])
            self.mqtt.subscribe(self.topics["cmd"])
            for routed in self._routes:
                self.mqtt.subscribe(routed)
            self.mqtt.start()

    def close(self) -> None:
        self.state.processor.flush_rejections(self.wall(), everything=True)  # no count is lost
        for part in (self.buttons, self.led):
            if part is not None:
                part.close()
        if self.mqtt is not None:
            self.mqtt.stop()

    # -- the loop's entry point ----------------------------------------------------------------
    def tick(self) -> None:
        now = self.mono()
        if self.sim_press is not None:
            self.sim_press.tick(now)
        if self.buttons is not None:
            self.buttons.tick(now)
        self._connection_events()
        # qsize() first: this runs every frame, nearly always on an empty inbox, and get_nowait()
        # says so by raising. Only this thread takes items, so what qsize() counts is there.
        for _ in range(min(self.inbox.qsize(), MAX_INBOX_PER_TICK)):
            self._dispatch(self.inbox.get_nowait(), now)
        if self._window_was_open and not self.window.is_open(now):
            log.info("pairing window closed: %s", self.window.close_reason)
            self._window_was_open = False
            if self.led is not None and self.window.close_reason != "paired":
                self.led.idle()
        if self.led is not None:
            self.led.tick(now)
        if now >= self._next_flush:
            self.state.processor.flush_rejections(self.wall())
            self._next_flush = now + REJECTION_FLUSH_S

    def _dispatch(self, item: Any, now: float) -> None:
        if isinstance(item, ButtonEvent):
            self._on_button(item, now)
        elif isinstance(item, InboundMessage):
            try:
                self._on_message(item, now)
            finally:
                # Handled (its effect is in device.sqlite): the broker may forget it. Not before:
                # a daemon that dies with it on the inbox gets it again when its session
                # resumes. Also when handling raised, or a message that crashes the daemon would
                # come back at every start.
                if self.mqtt is not None:
                    self.mqtt.ack(item)
        elif isinstance(item, ControlPress):
            self._on_control_press(item, now)
        elif (handler := self._handlers.get(type(item))) is not None:
            handler(item)
        else:
            log.warning("inbox item %r has no handler: dropped", item)

    def _on_message(self, item: InboundMessage, now: float) -> None:
        if item.topic == self.topics["pair_in"]:
            self._on_pairing_message(item.payload, now)
        elif item.topic == self.topics["cmd"]:
            self._on_command(item.payload, item.topic)
        elif (route := self._routes.get(item.topic)) is not None:
            route(item.payload)
        else:  # a subscription an earlier version left in the broker's kept session
            log.debug("message on %s: no longer handled here, ignored", item.topic)

    def _connection_events(self) -> None:
        if self.mqtt is None:
            return
        while self.mqtt.events.qsize():  # (as the inbox in tick(): only this thread takes)
            ev = self.mqtt.events.get_nowait()
            self.hooks.on_connection(ev)
            if ev.connected and ev.error is None:
                log.info("connected to the broker (MQTT %s)", self.mqtt.protocol)
                self.hooks.on_connected()
            elif not ev.connected:
                log.warning("broker connection lost: %s", ev.reason)

    # -- buttons -------------------------------------------------------------------------------
    def _on_button(self, ev: ButtonEvent, now: float) -> None:
        if ev.kind == "ring":
            log.info("RING pressed")
            self.on_ring()
        elif ev.kind == "pair":
            self.open_pairing(now)
        elif ev.kind == "reset":
            self.factory_reset()
        else:
            log.info("SETUP released after %.1f s: hold 3 s to pair, 10 s to reset",
                     ev.held_s or 0.0)

    def _on_control_press(self, press: ControlPress, now: float) -> None:
        if self.sim_press is None:
            log.warning("press %s ignored: this daemon has real buttons", press.button)
            return
        try:
            self.sim_press.press(press.button, press.hold_s, now)
        except DoorwardError as exc:
            log.warning("press %s ignored: %s", press.button, exc)

    def open_pairing(self, now: float) -> None:
        owners = self.state.consent.owners()
        if owners:
            log.warning("SETUP held: this doorbell already has an owner; another owner or a "
                        "viewer is added with a command signed by an existing owner "
                        "(`doorward owner add-member`), or after a factory reset (hold 10 s)")
            if self.led is not None:
                self.led.error()
            return
        if self.mqtt is None:
            log.warning("SETUP held, but no broker is configured ([mqtt] url or --broker): "
                        "pairing needs one")
            if self.led is not None:
                self.led.error()
            return
        self.window.open(now)
        self._window_was_open = True
        if self.led is not None:
            self.led.pairing()
        log.info("pairing window open for %.0f s: run `doorward owner pair --device %s ...`",
                 self.window.duration_s, self.state.identity.device_id)

    # -- pairing -------------------------------------------------------------------------------
    def _on_pairing_message(self, payload: bytes, now: float) -> None:
        if not self.window.is_open(now):
            if self.window.should_log_ignored():
                log.info("pairing message ignored: no pairing window is open (hold SETUP 3 s); "
                         "further ones are ignored silently until a window opens")
            return
        try:
            msg = decode_pairing(payload)
        except UplinkError as exc:
            log.warning("pairing message rejected: %s", exc)
            return
        if isinstance(msg, PairingHello):
            self._on_hello(msg, now)
        elif isinstance(msg, PairingConfirm):
            self._on_confirm(msg, now)

    def _on_hello(self, hello: PairingHello, now: float) -> None:
        kid = key_id_for(hello.owner_key)
        if self._gate(self.window.on_hello(kid, now)):
            self._publish_pairing(self._device_pairing.on_hello(hello))

    def _on_confirm(self, confirm: PairingConfirm, now: float) -> None:
        kid = key_id_for(confirm.owner_key)
        if not self._gate(self.window.on_confirm(kid, now)):
            return
        try:
            result, owner = self._device_pairing.on_confirm(confirm)
        except ForeignMessage as exc:
            log.warning("pairing confirmation ignored: %s", exc)
            return
        if owner is None:
            closed = self.window.on_failed_confirm(now)
            log.warning("pairing attempt failed (%s): %d of %d", result.reason,
                        self.window.failures, self.window.max_failures)
            self.state.processor.flush_rejections(self.wall())
            if closed and self.led is not None:
                self.led.error()
        else:
            wall = self.wall()
            # Store the owner (durably) before telling anyone it worked.
            self.state.consent.add_owner(owner.owner_key, owner.recipient, "owner", wall)
            self.state.ledger.append("pairing", {"owner": owner.key_id,
                                                 "recipient": owner.recipient}, wall)
            self.on_paired()  # before anything else is recorded: no clip stays dev-sealed
            self.window.on_success(now)
            self._window_was_open = False
            self.last_pairing = owner.key_id
            log.info("paired with owner %s: clips are now sealed to %s", owner.key_id,
                     owner.recipient)
            if self.led is not None:
                self.led.paired(now)
        self._publish_pairing(result)

    def _gate(self, decision: Decision) -> bool:
        if decision is Decision.ABORTED:
            log.warning("pairing aborted: %s", self.window.close_reason)
            if self.led is not None:
                self.led.error()
        return decision is Decision.ALLOWED

    def _publish_pairing(self, msg: PairingMessage) -> None:
        self._publish(self.topics["pair_out"], encode_pairing(msg))

    # -- owner commands ------------------------------------------------------------------------
    def _on_command(self, payload: bytes, topic: str) -> None:
        now = self.wall()
        with self.hooks.command_guard():
            response = self.state.processor.handle(payload, topic, now)
            revoked = response.result.get("revoked") if response.ok else None
            if isinstance(revoked, list) and revoked:
                self.hooks.on_revoked([str(s) for s in revoked])
        if response.ok:
            log.info("owner command %s accepted", response.jti)
            self.hooks.on_changed()
        # a rejection is logged (rate-limited) by the processor: a stranger can send thousands
        if response.jti is not None:  # nothing to answer when we cannot even name the command
            self._publish(self.topics["resp"], self.state.processor.respond(response, now).encode())

    def _publish(self, topic_name: str, payload: bytes) -> None:
        if self.mqtt is None:
            return
        try:
            self.mqtt.publish(topic_name, payload, qos=1)
        except MqttError as exc:
            log.warning("cannot publish on %s: %s", topic_name, exc)

    # -- factory reset -------------------------------------------------------------------------
    def factory_reset(self) -> None:
        """Forget the owner: consent, then everything local (``on_factory_reset``), then the
        ledger restarts and device.sqlite is scrubbed, all while message sending is held, so
        nothing of the previous owner leaves or stays readable (see agent.runtime.handover)."""
        now = self.wall()
        log.warning("factory reset: wiping owners, consent, settings, history and local clips")
        self.window.close("factory reset")
        with self.hooks.command_guard():
            self.state.consent.wipe()
            # as a revocation of everything: the upload in flight stops and is withdrawn before
            # the ledger restarts, so nothing it records lands in the next owner's ledger
            self.hooks.on_revoked(list(CONSENT_SCOPES))
            wiped = self.on_factory_reset()
            self.state.ledger.restart("factory-reset", wiped, now)
            self.state.db.scrub()
        self.last_pairing = ""
        self.hooks.on_changed()
        if self.led is not None:
            self.led.reset_confirm()
        log.warning("factory reset done: %s", wiped)
