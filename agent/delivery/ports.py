"""What an outbox lane needs (its ports) and how a port says a send failed.

:class:`agent.delivery.outbox_worker.OutboxWorker` builds a lane's :class:`Ports` on the lane's
own thread with ``ports_for(lane)`` (agent/delivery/lanes.py ``lane_ports`` in the daemon).

Publish port (messages lane): ``publish(sends) -> acknowledged``, how many of the batch, from the
first, the broker acknowledged (agent/delivery/publisher.py).

Upload port (uploads lane): ``upload(item, progress) -> result``. ``item.progress`` is the resume
state saved by an earlier run (None at first). The port calls ``progress(state)`` after each part
(state: JSON-able dict, saved durably) and ``progress(None)`` just to check before each step, in
particular before completing; ``progress`` raises :class:`UploadCancelled` (consent withdrawn or
item purged: abort the multipart upload, delete objects this job completed, and let it propagate)
or :class:`UploadInterrupted` (stopping: keep the multipart upload to resume, let it propagate).
The port should call ``progress(None)`` between 64 KiB reads of a request body too (the object
store's ``check``), so at most one bounded request is in flight when consent goes. The port raises
:class:`TransientSendError` (retry with backoff) or :class:`PermanentSendError` (dropped with the
reason, recorded). Any other exception is logged with its traceback and retried like a transient
one, so a bug cannot kill the sender silently.

:class:`LaneContext` is what the daemon hands every lane to build its ports from.

``allows(scope, now)`` is the lane's consent reader (``ConsentStore.allows`` on the lane's own
connection); the worker asks it through the consent gate (agent/delivery/gate.py), which exempts
the ``device`` scope.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.delivery.gate import ConsentGate
from agent.delivery.outbox import Item
from agent.device.identity import DeviceIdentity
from agent.errors import DoorwardError
from uplink import MqttPort, ObjectStore


class SendError(DoorwardError):
    """A port could not send. ``acked``: messages of the batch acknowledged before the failure."""

    def __init__(self, message: str, *, acked: int = 0, item_id: int | None = None) -> None:
        super().__init__(message)
        self.acked = acked
        self.item_id = item_id


class TransientSendError(SendError):
    """Worth retrying later (network, 5xx, throttling): the item backs off."""


class PermanentSendError(SendError):
    """Retrying cannot help (object too large, file gone, access denied): the item is dropped.
    For a message batch, ``item_id`` names the culprit."""


class UploadCancelled(DoorwardError):
    """The item must not be sent (consent withdrawn or the item was purged); never resume it.

    ``withdrawn``: raised by the port after it deleted what had reached the bucket and recorded
    that (disclosure, withdrawn) in the ledger; the drop is then not recorded again as an
    ``outbox-drop`` (reason prefix :data:`WITHDRAWN`)."""

    def __init__(self, message: str, *, withdrawn: bool = False) -> None:
        super().__init__(message)
        self.withdrawn = withdrawn


WITHDRAWN = "withdrawn"  # drop-reason prefix of an upload whose stored objects were withdrawn


class UploadInterrupted(DoorwardError):
    """The worker is stopping; the upload resumes from its saved progress at the next start."""


@dataclass(frozen=True)
class Send:
    """One message handed to the publish port; ``message_expiry_s`` is what is left of the item's
    lifetime (MQTT 5 message expiry), None for no expiry; ``retain``: the MQTT retain flag."""

    item_id: int
    topic: str
    payload: bytes
    message_expiry_s: int | None
    retain: bool = False


PublishBatch = Callable[[Sequence[Send]], int]
Progress = Callable[[dict[str, Any] | None], None]


class UploadPort(Protocol):
    def __call__(self, item: Item, progress: Progress) -> object: ...


@dataclass(frozen=True)
class Ports:
    """What a lane needs; built on the lane's own thread by the ``ports_for(lane)`` factory."""

    allows: Callable[[str, float], bool]
    publish: PublishBatch | None = None
    upload: UploadPort | None = None
    on_sent: Callable[[Item, object], None] | None = None
    on_drop: Callable[[Sequence[Item]], None] | None = None
    close: Callable[[], None] | None = None


@dataclass
class LaneContext:
    """Everything a lane builds for itself, on its own thread."""

    data_dir: Path
    identity: DeviceIdentity
    mqtt: MqttPort | None
    store_factory: Callable[[], ObjectStore] | None
    prefix: str
    bucket: str
    inbox: queue.Queue[Any]
    # The worker's wake(): a lane that queues a message (uploaded, a forget's sealed replies) must
    # wake the messages lane, or it sleeps until its next idle check.
    wake: Callable[[], None] = lambda: None
    # The daemon's consent gate (agent/delivery/gate.py): the lanes ask it, never consent alone.
    gate: ConsentGate = field(default_factory=ConsentGate)
