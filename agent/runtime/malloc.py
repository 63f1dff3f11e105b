"""glibc malloc settings for the long-running daemon.

glibc serves allocations above a threshold (128 KiB at first) with their own mmap and gives them
back to the system when freed; but the first time such a block is freed it raises the threshold to
that block's size (up to 32 MiB), so later large buffers (720p frames, JPEG snapshots, the age
writer's chunks, the simulator's painting) land on the heap instead, where fragmentation keeps
them: resident memory only grows. A fixed threshold keeps large, short-lived buffers out of the
heap. Frames themselves are not allocated per frame (sources hand out their own buffers), so the
mmap calls this costs are rare.

Call :func:`fix_mmap_threshold` once at start (the composition root does); it is a no-op where the
C library is not glibc.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
DEFAULT_THRESHOLD_BYTES = 1024 * 1024


def fix_mmap_threshold(threshold_bytes: int = DEFAULT_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold_bytes``; True if the C library took it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", threshold_bytes, done)
    return done
