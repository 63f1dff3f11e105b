"""Camera sources. ``open_source(spec, ...)`` in :mod:`agent.camera.sources` picks one from
``--source``.
"""

from agent.camera.base import Camera, Frame, i420_luma

__all__ = ["Camera", "Frame", "i420_luma"]
