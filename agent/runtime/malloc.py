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

Transparent huge pages: libx264 asks for 2 MiB pages (``madvise(MADV_HUGEPAGE)``) for every buffer
over about 1.75 MiB, and NumPy for arrays of 4 MiB or more, so each 720p frame buffer x264 keeps
(about 1.1 to 1.9 MiB) fills a whole 2 MiB page. Where the kernel honours the advice
(``transparent_hugepage/enabled`` = ``madvise`` or ``always``) that cost 4 to 14 MB of a daemon's
RSS here. :func:`disable_transparent_hugepages` turns them off for this process before any is
made (the composition root calls it next to the threshold); the TLB savings do not matter at
15 frames a second.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
DEFAULT_THRESHOLD_BYTES = 1024 * 1024
PR_SET_THP_DISABLE = 41  # from linux/prctl.h (Linux >= 3.15)


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


def disable_transparent_hugepages() -> bool:
    """Turn transparent huge pages off for this process (and its children); True if the kernel
    took it. A no-op returning False off Linux or on a kernel without the prctl."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no prctl in this C library
        return False
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    done = int(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) == 0
    log.debug("transparent huge pages off for this process: %s", done)
    return done
