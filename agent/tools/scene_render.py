"""Render a simulated scene to H.264 MP4 and return its ground truth (``doorward scenes render``).

The MP4 is a plain development artefact (a test input for ``analyze``), not a clip: it is not
sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from agent.camera.base import Camera


def render_scene(camera: Camera, scene: Any, out: Path,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Encode every frame of ``camera`` to ``out`` (libx264, yuv420p); return the ground truth.
    ``progress(n)``: called after each frame with the frames written so far."""
    frames = 0
    with camera, av.open(str(out), "w") as container:
        fps = round(camera.fps)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = camera.width, camera.height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "g": str(fps)}
        for frame in camera.frames():
            vf = av.VideoFrame.from_ndarray(frame.main, format="yuv420p")
            vf.pts = frame.index
            for pkt in stream.encode(vf):
                container.mux(pkt)
            frames += 1
            if progress is not None:
                progress(frames)
        for pkt in stream.encode():
            container.mux(pkt)
    return {
        "scene": scene.name, "fps": camera.fps, "frames": frames,
        "seconds": round(frames / camera.fps, 3),
        "events": [{"start": e.start, "end": e.end, "kind": e.kind} for e in scene.events],
        "rings": [r.t for r in scene.rings],
    }
