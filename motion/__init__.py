"""Pure motion detection and event logic: arrays and parameters in, results out; time is an argument.

Nothing here does I/O, reads a clock or imports another Doorward package.
"""  # noqa: E501 (the lead's summary line, kept verbatim)

from motion.detector import MotionDetector, MotionResult
from motion.detector_params import DetectorParams
from motion.event_params import EventParams
from motion.events import Event, EventEnded, EventStarted, EventTracker
from motion.zones import (
    Polygon,
    PrivacyMasker,
    apply_privacy_mask_i420,
    polygon_mask,
    validate_polygon,
)

__all__ = [
    "DetectorParams",
    "Event",
    "EventEnded",
    "EventParams",
    "EventStarted",
    "EventTracker",
    "MotionDetector",
    "MotionResult",
    "Polygon",
    "PrivacyMasker",
    "apply_privacy_mask_i420",
    "polygon_mask",
    "validate_polygon",
]
