"""What the delivery lanes report back to the loop, and the loop's record of it.

The lanes run on their own threads and only *post* reports to the loop's inbox:
:class:`ClipDelivered` (a clip's upload is complete) and :class:`LinkState` (the bucket's last
result). The MQTT client's connection events give the broker's. :class:`LaneReports` handles
them on the loop's thread; the composition root registers it with the controller's inbox::

    reports = LaneReports(store, wall=clock.wall)
    controller.handle(ClipDelivered, reports.on_delivered)
    controller.handle(LinkState, reports.on_link)
    hooks = UplinkHooks(on_connection=reports.on_connection, ...)
    ...each second: status.update(**links_json(reports.links))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.store import ClipStore
from uplink import ConnectionEvent

log = logging.getLogger("doorward")


@dataclass(frozen=True)
class ClipDelivered:
    """Posted to the loop's inbox by the upload lane: mark the clip delivered in the store."""

    clip_id: str


@dataclass(frozen=True)
class LinkState:
    """The last seen state of an uplink: ``link`` is "broker" or "bucket"; ``state`` is
    "connected", "disconnected" or "failed" (broker), "ok" or "failed" (bucket); ``at`` is the
    wall time it was seen; ``error`` the translated error of a failure (it names the fix).

    The upload lane posts one to the loop's inbox after every bucket request it makes;
    :class:`LaneReports` records the broker's from the MQTT client's connection events.
    """

    link: str
    state: str
    at: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "at": round(self.at, 3), "error": self.error}


def links_json(links: Mapping[str, LinkState]) -> dict[str, dict[str, Any]]:
    """The status.json fields (``broker``, ``bucket``) for the links seen so far."""
    return {name: link.to_json() for name, link in links.items()}


class LaneReports:
    """The loop's side of the lanes' reports (see the module docstring). Loop thread only."""

    def __init__(self, store: ClipStore, *, wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.wall = wall
        # broker/bucket reachability as last seen, for status.json (`doorward status`)
        self.links: dict[str, LinkState] = {}

    def on_delivered(self, report: ClipDelivered) -> None:
        """The store marks a delivered clip, unless the clip went while its upload finished (a
        factory reset wiped it, or eviction): then there is nothing left to mark."""
        if self.store.get_clip(report.clip_id) is None:
            log.info("clip %s was delivered after it was deleted locally", report.clip_id)
            return
        self.store.mark_delivered(report.clip_id)

    def on_link(self, report: LinkState) -> None:
        self.links[report.link] = report

    def on_connection(self, event: ConnectionEvent) -> None:
        """The broker's link, from the MQTT client's connection events."""
        if event.connected and event.error is None:
            self.links["broker"] = LinkState("broker", "connected", self.wall())
        elif not event.connected:
            self.links["broker"] = LinkState(
                "broker", "failed" if event.error else "disconnected", self.wall(),
                str(event.error) if event.error else event.reason)
