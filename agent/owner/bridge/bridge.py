"""The bridge's worker: verified feed items in, Home Assistant states out.

The device's messages are verified and opened by the owner app's :class:`LiveFeed` (signature,
chain, sealed body opened with the bridge's own identity); its listener hands each item here, and
the items that failed are dropped and logged with the reason (``rejected``: a bad signature, a
body sealed to someone else, a malformed message; ``replayed``: a signed message seen before).

One thread owns the Home Assistant client and the last state of every device: the feed's listener
and the client's callbacks only enqueue. What is retained on Home Assistant's broker (discovery,
availability, motion, the last event, its snapshot) is kept here too and published again whenever
the client (re)connects and whenever Home Assistant announces itself (``homeassistant/status``
``online``, its birth message after a restart), so an outage of either loses no state. Ring
events are not retained (a retained ring would ring again at every restart of Home Assistant);
published while the broker is away, paho keeps them and sends them when it is back.

Nothing is lost if the bridge dies meanwhile: the feed's client acknowledges a device message to
the device's broker only through :meth:`HaBridge.settle`, which holds each acknowledgement until
Home Assistant's broker has confirmed (PUBACK) every publish made up to it, and gives them in
arrival order. A bridge killed with republishes unconfirmed gets those messages again from its
broker session at the next start: a ring still rings if signed within ``max_ring_age_s``, and the
states are set from a message whose seq is the one they last took (so possibly never shown).
A ring confirmed just before the bridge died, but not yet acknowledged, can ring twice.

The states follow only a message newer (by the device's seq) than the one they show, remembered
across restarts (:class:`~agent.owner.bridge.shown.ShownSeqs`); until they show one, only a
message signed within ``max_ring_age_s``. The chain check alone starts at the first message heard,
so the broker's operator could otherwise set motion ON with a captured old message at each start
of the bridge, or by letting a held-back one through late (tests/adversarial/
test_bridge_state_replay.py). A ring rings only if signed within ``max_ring_age_s``.

Wiring (agent.owner.bridge.main)::

    bridge = HaBridge(ha_connector, ha_broker_options, bridge_id=ring.key_id,
                      devices=[d.device_id for d in ring.devices()],
                      prefix="homeassistant", sw_version=__version__, pictures=pictures,
                      shown=ShownSeqs.open(owner_dir / SHOWN_FILE))
    feed = LiveFeed(ring, broker=device_broker, snapshot=pictures.find, settle=bridge.settle,
                    ...)
    feed.listen(bridge.offer); bridge.start(); feed.start(); ...
    feed.quiesce(); bridge.stop(); feed.stop()  # Running.close: settle, then disconnect
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from agent.errors import DoorwardError
from agent.owner.bridge.ha_discovery import (
    BIRTH_TOPIC,
    OFFLINE,
    ONLINE,
    StateTopics,
    attributes_payload,
    bridge_availability,
    discovery_configs,
    event_payload,
    motion_payload,
)
from agent.owner.bridge.shown import ShownSeqs
from agent.owner.client import BrokerOptions
from uplink import (
    ConnectionEvent,
    InboundMessage,
    MqttConnector,
    MqttPort,
    PublishHandle,
    UplinkError,
)

log = logging.getLogger("doorward")
MAX_IMAGE_BYTES = 120 * 1024  # under the 128 KB MQTT payload limit the project holds to
# A ring whose signed time is older than this does not ring in Home Assistant, and until the
# states show a message of a device, an older one does not set them: the chain check cannot see a
# replay of a message older than the bridge's start.
MAX_RING_AGE_S = 300.0
STATE_KINDS = ("ring", "motion-started", "motion-ended")
# Said once when Home Assistant's broker has confirmed nothing for this long: the device's broker
# holds the messages meanwhile (up to its in-flight window, then its queue for the session).
UNCONFIRMED_WARN_S = 30.0
# How long a stopping bridge waits for Home Assistant's broker to confirm what it has published,
# so that the messages behind it are acknowledged and not sent again at the next start.
SETTLE_AT_STOP_S = 2.0


class Pictures(Protocol):
    """Decrypted snapshots by clip (agent.owner.bridge.pictures.BridgePictures)."""

    def jpeg(self, device_id: str, clip_id: str) -> bytes | None: ...


class HaBridge:
    """See the module docstring."""

    def __init__(self, connector: MqttConnector, broker: BrokerOptions, *, bridge_id: str,
                 devices: list[str], prefix: str, sw_version: str,
                 pictures: Pictures | None = None, client_id: str | None = None,
                 max_ring_age_s: float = MAX_RING_AGE_S, shown: ShownSeqs | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.bridge_id = bridge_id
        self.shown = shown if shown is not None else ShownSeqs()
        self.max_ring_age_s, self.wall = max_ring_age_s, wall
        self.prefix = prefix
        self.sw_version = sw_version
        self.pictures = pictures
        self.inbox: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.availability = bridge_availability(bridge_id)
        settings = broker.settings(client_id or f"doorward-bridge-{uuid.uuid4().hex[:8]}",
                                   will_topic=self.availability, will_payload=OFFLINE.encode())
        self.ha: MqttPort = connector(settings, on_message=lambda m: self.inbox.put(("ha", m)))
        self.ha.subscribe(BIRTH_TOPIC)
        # topic -> payload of everything retained: published again after any reconnection
        self.retained: dict[str, bytes] = {}
        self.last_clip: dict[str, str] = {}
        self.published = 0
        self.dropped = 0
        # publishes not yet confirmed by Home Assistant's broker, oldest first; _confirmed of
        # them all so far; acknowledgements held until the publishes made before them are
        # confirmed: (publishes made when it came, when, ack)
        self._unconfirmed: deque[PublishHandle] = deque()
        self._confirmed = 0
        self._held: deque[tuple[int, float, Callable[[], None]]] = deque()
        self._warned = False
        self._thread: threading.Thread | None = None
        for device_id in devices:
            self.add_device(device_id)

    # -- wiring (any thread) -----------------------------------------------------------------
    def add_device(self, device_id: str) -> None:
        """Discovery configs for ``device_id`` (published at the next connection or now)."""
        for c in discovery_configs(device_id, bridge_id=self.bridge_id, prefix=self.prefix,
                                   sw_version=self.sw_version):
            self.retained[c.topic] = c.encoded()

    def offer(self, item: dict[str, Any]) -> None:
        """The feed's listener: enqueue only (called on the feed's worker thread)."""
        self.inbox.put(("item", item))

    def settle(self, ack: Callable[[], None]) -> None:
        """The feed's ``settle``: ``ack`` acknowledges the message just offered to the device's
        broker; called once Home Assistant's broker confirmed what it caused (enqueue only)."""
        self.inbox.put(("ack", ack))

    def start(self) -> None:
        self.ha.start()
        self._thread = threading.Thread(target=self._run, name="ha-bridge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say ``offline`` on the bridge's availability (a clean stop sends no will), stop.
        Returns once the worker has ended: an item it is handling (a picture being fetched and
        opened) is finished first, bounded by the store's own timeouts, so nothing runs on after
        the bridge says it stopped. Before it ends, the worker waits up to ``SETTLE_AT_STOP_S``
        for Home Assistant's broker to confirm what it published, and gives the acknowledgements
        held for it (call it before the feed disconnects: ``Running.close``)."""
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("bridge: still handling an item after %.0f s; waiting for it to end",
                            timeout)
                self._thread.join()
        if self.ha.is_connected:
            try:
                self.ha.wait_published(self.ha.publish(self.availability, OFFLINE.encode(),
                                                       retain=True), timeout)
            except UplinkError as exc:
                log.warning("bridge: could not say offline on Home Assistant's broker: %s", exc)
        self.ha.stop()

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until everything enqueued so far is handled (tests)."""
        done = threading.Event()
        self.inbox.put(("call", done.set))
        done.wait(timeout)

    # -- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                job = self.inbox.get(timeout=0.2)
            except queue.Empty:
                job = ("tick", None)
            if job is None:
                self._settle_before_stop(SETTLE_AT_STOP_S)
                return
            self._connection_events()
            kind, value = job
            try:
                if kind == "item":
                    self.handle(value)
                elif kind == "ha":
                    self._from_ha(value)
                elif kind == "ack":
                    self._held.append((self.published, time.monotonic(), value))
                elif kind == "call":
                    value()
            except UplinkError as exc:  # a refused publish: logged, the bridge goes on
                log.warning("bridge: Home Assistant's broker refused a publish: %s", exc)
            self._release()

    def _release(self) -> None:
        """Acknowledge, in arrival order, each device message whose republishes Home
        Assistant's broker has all confirmed."""
        while self._unconfirmed and self._confirmed_now(self._unconfirmed[0]):
            self._unconfirmed.popleft()
            self._confirmed += 1
        while self._held and self._held[0][0] <= self._confirmed:
            self._held.popleft()[2]()
        waited = time.monotonic() - self._held[0][1] if self._held else 0.0
        late = waited > UNCONFIRMED_WARN_S
        if late and not self._warned:
            log.warning("bridge: Home Assistant's broker has left %d publish(es) unconfirmed "
                        "for %.0f s; the device's broker keeps %d message(s) for the bridge "
                        "until it confirms them", len(self._unconfirmed), waited,
                        len(self._held))
        elif self._warned and not late:
            log.info("bridge: Home Assistant's broker confirms the bridge's publishes again")
        self._warned = late

    def _settle_before_stop(self, within_s: float) -> None:
        """Wait up to ``within_s`` for Home Assistant's broker to confirm the publishes the held
        acknowledgements wait for, giving those as it does. What stays unconfirmed (its broker
        is away) is left for the device's broker to send again at the next start."""
        deadline = time.monotonic() + within_s
        self._release()
        while self._held and self._unconfirmed and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(UplinkError):  # refused: _release logs it, goes past it
                self.ha.wait_published(self._unconfirmed[0], min(left, 0.1))
            self._release()

    def _confirmed_now(self, handle: PublishHandle) -> bool:
        try:
            return self.ha.is_published(handle)
        except UplinkError as exc:  # refused for good (an ACL): nothing to wait for
            log.warning("bridge: Home Assistant's broker refused a publish: %s", exc)
            return True

    def _connection_events(self) -> None:
        while True:
            try:
                event: ConnectionEvent = self.ha.events.get_nowait()
            except queue.Empty:
                return
            if event.connected and event.error is None:
                log.info("bridge: connected to Home Assistant's broker; publishing %d retained "
                         "state(s)", len(self.retained) + 1)
                self.republish()
            elif event.error is not None:
                log.warning("bridge: Home Assistant's broker: %s", event.reason,
                            extra={"fields": {"broker": self.ha.settings.url}})

    def _from_ha(self, msg: InboundMessage) -> None:
        if msg.topic == BIRTH_TOPIC and msg.payload == ONLINE.encode() and not msg.retain:
            log.info("bridge: Home Assistant (re)started: publishing discovery and states again")
            self.republish()

    def republish(self) -> None:
        """The bridge's birth, then every retained config and state (idempotent)."""
        self._publish(self.availability, ONLINE.encode(), retain=True)
        for topic, payload in list(self.retained.items()):
            self._publish(topic, payload, retain=True)

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        self._unconfirmed.append(self.ha.publish(topic, payload, qos=1, retain=retain))
        self.published += 1

    def _state(self, topic: str, payload: bytes) -> None:
        self.retained[topic] = payload
        self._publish(topic, payload, retain=True)

    def handle(self, item: dict[str, Any]) -> None:
        """One feed item (on the worker thread)."""
        device_id = str(item.get("device_id", ""))
        kind = item.get("type")
        if kind == "rejected":
            self._drop(item, "failed verification", item.get("reason"))
            return
        if kind == "status":
            self._state(StateTopics(device_id).availability,
                        (ONLINE if item.get("state") == ONLINE else OFFLINE).encode())
            return
        if kind == "snapshot":
            self._snapshot(device_id, str(item.get("clip_id", "")))
            return
        if kind != "event" or not item.get("verified"):
            return
        if item.get("replayed"):
            self._drop(item, "replayed", "; ".join(item.get("chain", [])))
            return
        self._event(device_id, item)

    def _event(self, device_id: str, item: dict[str, Any]) -> None:
        t = StateTopics(device_id)
        if item.get("kind") not in STATE_KINDS:
            return  # clip-sealed, uploaded, sealed-to-others: no state of their own
        ring = event_payload(item)
        rang = ring is not None and self._fresh(item)
        if rang and ring is not None:
            self._publish(t.event, ring, retain=False)
        kept = self._kept_back(device_id, item)
        if kept is not None:
            if not rang:
                self._drop(item, *kept)
            return
        if item.get("clip_id"):
            self.last_clip[device_id] = str(item["clip_id"])
        motion = motion_payload(item)
        if motion is not None:
            self._state(t.motion, motion)
        self._state(t.last_event, str(item["kind"]).encode())
        self._state(t.attributes, attributes_payload(item))
        self._remember(device_id, int(item["seq"]))
        log.info("bridge: %s from %s republished to Home Assistant", item["kind"], device_id,
                 extra={"fields": {"device_id": device_id, "seq": item.get("seq"),
                                   "kind": item["kind"]}})

    def _kept_back(self, device_id: str, item: dict[str, Any]) -> tuple[str, str] | None:
        """Why ``item`` must not set the states (a reason and its detail), or None: ``late``,
        older than the message they last took; ``stale``, while they show none of the device,
        signed longer ago than ``max_ring_age_s``. The message they last took may set them again:
        it is the one sent again after the bridge died before Home Assistant's broker had it,
        and, replayed, it sets what they already show."""
        seq, shown = item.get("seq"), self.shown.get(device_id)
        if not isinstance(seq, int):
            return "late", "no seq"
        if shown is not None:
            return None if seq >= shown else (
                "late", f"seq {seq} is older than seq {shown}, whose state Home Assistant "
                "shows: held back and let through late, or replayed")
        age = self._age(item)
        if age is not None and age <= self.max_ring_age_s:
            return None
        return "stale", (
            f"the first message shown of a device must be signed within "
            f"{self.max_ring_age_s:.0f} s; this one is "
            f"{'undated' if age is None else f'{age:.0f} s old'}: a replay, or the device's clock "
            "or this host's is off (check that both keep time; --max-ring-age widens the bound)")

    def _remember(self, device_id: str, seq: int) -> None:
        try:
            self.shown.record(device_id, seq)
        except DoorwardError as exc:  # the states are out; only the restart guard is weaker
            log.error("bridge: %s: after a restart, a replay of seq %d could set the states "
                      "again", exc, seq, extra={"fields": {"device_id": device_id, "seq": seq,
                                                          "reason": "unsaved"}})

    def _age(self, item: dict[str, Any]) -> float | None:
        """Seconds since ``item``'s signed ``at``, or None when it has none."""
        try:
            at = datetime.fromisoformat(str(item.get("at", "")).replace("Z", "+00:00"))
        except ValueError:
            return None
        return self.wall() - at.timestamp()

    def _fresh(self, item: dict[str, Any]) -> bool:
        """Whether a ring is recent enough to ring (its ``at`` is signed by the device)."""
        age = self._age(item)
        if age is not None and age <= self.max_ring_age_s:
            return True
        log.warning("bridge: a ring from %s rang %s ago: not rung in Home Assistant (older "
                    "than %.0f s: late or replayed)", item.get("device_id"),
                    "an unknown time" if age is None else f"{age:.0f} s",
                    self.max_ring_age_s, extra={"fields": {
                        "device_id": item.get("device_id"), "seq": item.get("seq"),
                        "reason": "stale", "age_s": None if age is None else round(age)}})
        return False

    def _snapshot(self, device_id: str, clip_id: str) -> None:
        if self.pictures is None or self.last_clip.get(device_id) != clip_id:
            return  # only the last event's picture: an older clip's may come late
        jpeg = self.pictures.jpeg(device_id, clip_id)
        if jpeg is None:
            return
        self._state(StateTopics(device_id).image, fit_jpeg(jpeg))
        log.info("bridge: snapshot of clip %s republished to Home Assistant (%d bytes)",
                 clip_id, len(jpeg), extra={"fields": {"device_id": device_id,
                                                       "clip_id": clip_id}})

    def _drop(self, item: dict[str, Any], why: str, detail: Any) -> None:
        self.dropped += 1
        log.warning("bridge: dropped a message from %s: %s (%s)", item.get("device_id"), why,
                    detail, extra={"fields": {"device_id": item.get("device_id"),
                                              "stream": item.get("stream"), "seq": item.get("seq"),
                                              "reason": why, "detail": str(detail)}})


def fit_jpeg(jpeg: bytes, limit: int = MAX_IMAGE_BYTES,
             encode: Callable[[bytes, int], bytes] | None = None) -> bytes:
    """``jpeg`` unchanged when it fits one MQTT message; else re-encoded smaller (OpenCV), as
    the MQTT brokers the project supports take at most 128 KB."""
    if len(jpeg) <= limit:
        return jpeg
    encode = encode or _reencode
    for quality in (70, 50, 35):
        smaller = encode(jpeg, quality)
        if len(smaller) <= limit:
            return smaller
    return encode(jpeg, 0)


def _reencode(jpeg: bytes, quality: int) -> bytes:
    """The JPEG at ``quality``; 0: also halved in size until it fits."""
    import cv2  # only for a snapshot too large for one message
    import numpy as np

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return jpeg[:0]
    q = quality or 35
    while True:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
        data = buf.tobytes() if ok else b""
        if quality or len(data) <= MAX_IMAGE_BYTES or min(image.shape[:2]) < 64:
            return data
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2))

