"""Contact sheet of a video: a PNG grid of frames, each stamped with its time in seconds.

Usage: ``python scripts/footage_sheet.py FILE OUT.png [--t0 S] [--t1 S] [--step S] [--cols N]
[--width PX] [--crop X0,X1,Y0,Y1]``. How tests/data/footage/annotations.json was made: a sheet of
the whole file every 0.5 s to find each arrival and departure, then sheets of every frame
(``--step 0`` or the frame interval) around each, cropped to the edge the person or car crosses
(``--crop`` takes fractions of the width and height), viewed as images.
"""

from __future__ import annotations

import argparse
import sys

import av
import cv2
import numpy as np


def sheet(path: str, t0: float, t1: float, step: float, cols: int, width: int,
          crop: tuple[float, float, float, float]) -> np.ndarray:
    """The grid (BGR) of the frames of ``path`` in [t0, t1], at least ``step`` s apart."""
    tiles: list[np.ndarray] = []
    nxt = t0
    x0, x1, y0, y1 = crop
    with av.open(path) as container:
        for frame in container.decode(container.streams.video[0]):
            t = float(frame.time or 0.0)
            if t < nxt - 1e-6:
                continue
            if t > t1:
                break
            img = frame.to_ndarray(format="bgr24")
            h, w = img.shape[:2]
            img = np.ascontiguousarray(img[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)])
            img = cv2.resize(img, (width, max(1, img.shape[0] * width // img.shape[1])),
                             interpolation=cv2.INTER_AREA)
            for colour, thickness in (((0, 0, 0), 3), ((0, 255, 255), 1)):
                cv2.putText(img, f"{t:.2f}", (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour,
                            thickness)
            tiles.append(img)
            nxt = t + step
    if not tiles:
        raise SystemExit(f"{path}: no frame between {t0} and {t1} s")
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    # A magenta line under each row keeps one row's crop from reading as the next row's.
    rows = [np.vstack([np.hstack(tiles[i:i + cols]),
                       np.full((4, width * cols, 3), (255, 0, 255), np.uint8)])
            for i in range(0, len(tiles), cols)]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("out")
    ap.add_argument("--t0", type=float, default=0.0, help="first time, s (default 0)")
    ap.add_argument("--t1", type=float, default=float("inf"), help="last time, s (default: end)")
    ap.add_argument("--step", type=float, default=1.0, help="s between tiles (0: every frame)")
    ap.add_argument("--cols", type=int, default=8, help="tiles per row (default 8)")
    ap.add_argument("--width", type=int, default=240, help="tile width in pixels (default 240)")
    ap.add_argument("--crop", default="0,1,0,1", help="X0,X1,Y0,Y1 as fractions (default whole)")
    args = ap.parse_args(argv)
    x0, x1, y0, y1 = (float(v) for v in args.crop.split(","))
    grid = sheet(args.file, args.t0, args.t1, args.step, args.cols, args.width, (x0, x1, y0, y1))
    cv2.imwrite(args.out, grid)
    print(f"{args.out}: {grid.shape[1]}x{grid.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
