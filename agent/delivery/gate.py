"""The consent gate: the one object every send path asks whether a scope may leave now.

Asked at queue time (:class:`agent.delivery.queueing.Delivery`: events, clips, segments, and
through ``Delivery.may_leave`` Home Assistant discovery;
:class:`agent.delivery.checkpoints.CheckpointPublisher`), at the moment of sending (the outbox
lanes: :class:`agent.delivery.outbox_worker.OutboxWorker` before every message batch and before
an upload starts), during an upload (the worker's progress callback, i.e. the object store's
check every 64 KiB of a request body, and :class:`agent.delivery.uploader.ClipUploader` for the
snapshot of a clip) and after it (the ``uploaded`` announcement). Re-delivery at start-up goes
through ``Delivery.upload_scope``, so through the gate too.

It holds the three rules that used to be spread over the daemon's wiring:

* **the device scope** (:data:`DEVICE_SCOPE`: status, command replies, erasure and withdrawal
  jobs) is the device's own traffic and needs no consent; every other scope needs a grant in
  force at the moment asked (a grant that expired a microsecond ago no longer counts);
* **the pause**: :meth:`paused` is held while an owner command (or a factory reset) runs, and
  :meth:`sending` while the messages lane checks and publishes a batch: one lock, so a batch
  either went before the command started or is checked after it committed;
* **the revocation**: :meth:`revoked` (after the revoke committed, still inside :meth:`paused`)
  drops what is queued under the scopes (``purge``, the loop's ``Delivery.purge``) and waits,
  bounded by ``revoke_wait_s``, until no upload of those scopes is in flight.

No send races a revoke. A message batch is checked and published under the lock :meth:`paused`
holds during the command, so no message of a revoked scope is handed to the broker after the
revocation commits. An upload is checked and registered in flight in one step
(:meth:`admission` with :meth:`register_upload`), the step :meth:`wait_stopped` waits on: so an
upload either saw the revocation before it sent anything, or is waited for; while running it asks
the gate again before every request and every 64 KiB of a body, so it stops within one bounded
read and withdraws what it stored before :meth:`revoked` returns and the owner's reply goes out.

Wiring (the composition root; one gate per daemon, shared by all threads)::

    gate = ConsentGate()
    ctx = LaneContext(..., gate=gate)                        # the lanes' ports ask it
    worker = OutboxWorker(path, ports_for, gate=gate)        # lanes: may_leave, admission
    delivery = Delivery(outbox, ..., gate=gate)              # queue time
    UplinkHooks(command_guard=gate.paused,
                on_revoked=functools.partial(gate.revoked, purge=delivery.purge))

The gate keeps no database connection: each thread passes its own consent reader
(``ConsentStore.allows`` on that thread's connection), since SQLite connections are per thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from agent.device.consent import SCOPES

log = logging.getLogger("doorward")

DEVICE_SCOPE = "device"  # the device's own traffic: needs no consent
# How long a revocation's reply waits for the upload in flight to stop (it stops within one
# 64 KiB read; the rest is withdrawing what it stored); below the owner tool's 15 s wait.
REVOKE_WAIT_S = 10.0

Allows = Callable[[str, float], bool]
"""A thread's consent reader: ``ConsentStore.allows`` (scope, now) -> in force now."""

Purge = Callable[[Sequence[str], str], int]
"""Drops what is queued under the scopes with the reason; returns how many (``Delivery.purge``)."""


class InFlight(Protocol):
    """What the gate keeps of an upload in flight (an outbox ``Item``)."""

    @property
    def id(self) -> int: ...
    @property
    def scope(self) -> str: ...


class ConsentGate:
    """See the module docstring. Thread-safe; one per daemon."""

    def __init__(self, *, revoke_wait_s: float = REVOKE_WAIT_S) -> None:
        self.revoke_wait_s = revoke_wait_s
        self._pause = threading.Lock()  # an owner command, or a message batch being sent
        self._cond = threading.Condition()  # uploads in flight (checked + registered under it)
        self._in_flight: dict[str, InFlight] = {}  # lane -> the upload its port is running

    # ---- the rule ----------------------------------------------------------------------------

    @staticmethod
    def may_leave(consent: Allows, scope: str, now: float) -> bool:
        """Whether an item of ``scope`` may leave at ``now``: always for :data:`DEVICE_SCOPE`,
        else only under a grant in force (``consent``: the asking thread's reader)."""
        if scope == DEVICE_SCOPE:
            return True
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {(DEVICE_SCOPE, *SCOPES)}")
        return consent(scope, now)

    def upload_scope(self, consent: Allows, now: float, *, snapshot: bool) -> str | None:
        """The scope a clip would go up under now: ``clips`` (clip and snapshot), ``snapshots``
        (the snapshot alone; only if it has one: ``snapshot``) or None."""
        if self.may_leave(consent, "clips", now):
            return "clips"
        if snapshot and self.may_leave(consent, "snapshots", now):
            return "snapshots"
        return None

    # ---- the pause ---------------------------------------------------------------------------

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold message sending (waits for a batch in progress), e.g. while an owner command
        runs: the controller's ``command_guard``."""
        with self._pause:
            yield

    @contextmanager
    def sending(self) -> Iterator[None]:
        """Held by the messages lane while it checks a batch and publishes it."""
        with self._pause:
            yield

    # ---- uploads in flight -------------------------------------------------------------------

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Held while an upload is checked and registered (:meth:`register_upload`): one step
        with :meth:`wait_stopped`, so an upload sees a revocation or is waited for."""
        with self._cond:
            yield

    def register_upload(self, lane: str, item: InFlight) -> None:
        with self._cond:
            self._in_flight[lane] = item

    def upload_ended(self, lane: str) -> None:
        """The lane's upload ended, however: wake whoever waits for it."""
        with self._cond:
            self._in_flight.pop(lane, None)
            self._cond.notify_all()

    def wait_stopped(self, scopes: Sequence[str], timeout_s: float) -> bool:
        """Wait until no upload of ``scopes`` is in flight (a ``clips`` upload carries the
        snapshot too, so revoking ``snapshots`` waits for it). False if one still runs after
        ``timeout_s`` (logged)."""
        def busy() -> list[InFlight]:
            return [i for i in self._in_flight.values()
                    if i.scope in scopes or ("snapshots" in scopes and i.scope == "clips")]

        with self._cond:
            if self._cond.wait_for(lambda: not busy(), timeout_s):
                return True
            log.error("uploads %s still running %.0f s after the revocation of %s",
                      [i.id for i in busy()], timeout_s, ", ".join(scopes))
            return False

    # ---- revocation --------------------------------------------------------------------------

    def revoked(self, scopes: Sequence[str], *, purge: Purge) -> None:
        """After a revocation of ``scopes`` committed (inside :meth:`paused`): drop what is
        queued, then wait (bounded) for the upload in flight to stop and withdraw what it
        stored, so the owner's reply follows only once it has stopped (a timeout is logged)."""
        dropped = purge(scopes, "consent revoked")
        log.info("consent revoked for %s: %d queued item(s) dropped", ", ".join(scopes), dropped)
        self.wait_stopped(scopes, self.revoke_wait_s)
