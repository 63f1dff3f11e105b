"""What the event tracker (:class:`motion.events.EventTracker`) decides: frozen messages, one
per decision, in time order. ``motion`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventStarted:
    """An event began. ``t``: when decided; ``onset_t``: first motion of the run (or the ring time).

    reason: "motion", "continued" (after a max-length split) or the trigger's reason (e.g. "ring").
    """

    event_id: int
    t: float
    onset_t: float
    reason: str


@dataclass(frozen=True)
class EventEnded:
    """An event ended. ``t``: when decided; ``last_motion_t``: the last moment of motion.

    reason: "still" (post-roll elapsed), "max-length" (split at max_clip_s) or "stopped" (finish()).
    ``peak_area``/``peak_t``: the largest motion area seen during the event and when (for the
    snapshot).
    """

    event_id: int
    t: float
    last_motion_t: float
    reason: str
    peak_area: float = 0.0
    peak_t: float = 0.0


Event = EventStarted | EventEnded
