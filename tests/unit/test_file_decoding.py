"""A file played at its frame rate (``run --realtime``) decodes with slice threads only: frame
threading's frames in flight cost about 10 MB of RSS at 720p for a speed it does not need."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from agent.camera.file import decoder_threading


def _single_slice_h264(path: Path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(15))
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.codec_context.options = {"preset": "ultrafast"}  # no zerolatency: one slice a frame
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((96, 64), 40 * i, np.uint8),
                                               format="yuv420p")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def test_a_paced_file_decodes_with_slice_threads_only(tmp_path: Path) -> None:
    video = tmp_path / "one-slice.mp4"
    _single_slice_h264(video)
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        first = next(c.demux(stream))
        assert decoder_threading(stream, first) == "AUTO"  # analyze: frame threads
        assert decoder_threading(stream, first, paced=True) == "SLICE"
