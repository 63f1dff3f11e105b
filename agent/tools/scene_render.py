"""Render a simulated scene to H.264 MP4 and return its ground truth (``doorward scenes render``).

The MP4 is a plain development artefact (a test input for ``analyze``), not a clip: it is not
sealed. Scenes that record at the device's bitrate (``scene.sensor.codec_kbps_720p``, the scenes of
issue 18) are encoded as the device would (libx264 ultrafast, zerolatency, at that bitrate scaled
to the render size), so the file carries the artefacts a detector meets on real recordings; the
others at a high constant quality (crf 20), as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av

from agent.camera.base import Camera
from agent.camera.sim.codec import device_x264_options


def render_scene(
    camera: Camera, scene: Any, out: Path, *, kbps: float | None = None
) -> dict[str, Any]:
    """Encode every frame of ``camera`` to ``out`` (libx264, yuv420p); return the ground truth.

    ``kbps``: encode like the device at this bitrate (pass a camera that does not round-trip
    its frames itself: ``SimCamera(codec_kbps=0)``); None: high quality (crf 20).
    """
    frames = 0
    with camera, av.open(str(out), "w") as container:
        fps = round(camera.fps)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = camera.width, camera.height, "yuv420p"
        if kbps is None:
            stream.options = {"preset": "veryfast", "crf": "20", "g": str(fps)}
        else:
            stream.bit_rate = round(kbps * 1000)
            stream.options = dict(device_x264_options(kbps, camera.fps))
        for frame in camera.frames():
            vf = av.VideoFrame.from_ndarray(frame.main, format="yuv420p")
            vf.pts = frame.index
            for pkt in stream.encode(vf):
                container.mux(pkt)
            frames += 1
        for pkt in stream.encode():
            container.mux(pkt)
    return {
        "scene": scene.name, "fps": camera.fps, "frames": frames,
        "seconds": round(frames / camera.fps, 3),
        "kbps": None if kbps is None else round(kbps, 1),
        "events": [{"start": e.start, "end": e.end, "kind": e.kind} for e in scene.events],
        "rings": [r.t for r in scene.rings],
    }
