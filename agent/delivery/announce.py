"""Events as the daemon logs and announces them: the pipeline's ``on_event`` callback.

Wiring (agent.app)::

    pipeline = Pipeline(..., on_event=EventAnnouncer(delivery) if delivery else log_event)

A ring is announced by the press itself (agent.runtime.ticks.RingPress), not by the event it
starts, so it is announced also when it extends an event already under way.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.delivery.queueing import Delivery

log = logging.getLogger("doorward")


def log_event(doc: dict[str, Any]) -> None:
    """One log line per event start and end (the structured ``doc`` rides along)."""
    if doc["event"] == "started":
        log.info("event %s started (%s) at %.2f s", doc["event_id"], doc["reason"], doc["onset_s"],
                 extra={"fields": doc})
    elif "clip_id" in doc:
        log.info("event %s ended at %.2f s; clip %s sealed: %.1f s, %d bytes",
                 doc["event_id"], doc["last_motion_s"], doc["clip_id"], doc["clip_duration_s"],
                 doc["clip_bytes"], extra={"fields": doc})
    else:
        log.info("event %s ended at %.2f s (no clip recorded)", doc["event_id"],
                 doc["last_motion_s"], extra={"fields": doc})


class EventAnnouncer:
    """Logs every event and queues its announcement (motion started/ended) for delivery."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def __call__(self, doc: dict[str, Any]) -> None:
        log_event(doc)
        if doc["event"] == "started":
            if doc["reason"] != "ring":  # a ring is announced by the press itself
                self.delivery.event("motion-started", doc["event_id"], clip_id=doc.get("clip_id"))
        else:
            self.delivery.event("motion-ended", doc["event_id"], clip_id=doc.get("clip_id"),
                                peak_area=doc.get("peak_area"))
