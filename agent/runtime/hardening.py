"""Process hardening at the start of ``doorward run``, for runs outside systemd as much as inside.

Wiring: ``agent.app.run`` calls :func:`harden_process` first, before the data directory or any file
in it is opened. It

- sets the umask to 0077, so every file and directory the daemon creates (the clip index, sealed
  clips and snapshots, status.json, SQLite's -wal/-shm files) is private to its user even when it
  is started from a shell with the usual 022 (systemd's unit says ``UMask=0077`` as well);
- marks the process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): no core file, even with
  ``ulimit -c unlimited``, and other processes of the same user cannot ptrace it or read its
  memory. The daemon holds live frames in RAM, unencrypted by design (they are analysed there);
  a core dump would put them on the SD card. The unit also says ``LimitCORE=0``.

Swap is outside a process's reach: the unit's ``MemorySwapMax=0`` keeps the service's memory out
of swap, and the README says to disable swap or encrypt it on the Pi.

On systems without ``prctl`` (not Linux) the dumpable part is a no-op; a prctl that fails on Linux
is an error that names the fix, not something to run without.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from agent.errors import DoorwardError

PRIVATE_UMASK = 0o077
PR_SET_DUMPABLE = 4


def harden_process() -> None:
    """Private umask and a non-dumpable process; call once, first thing in the daemon."""
    os.umask(PRIVATE_UMASK)
    if sys.platform.startswith("linux"):
        _set_non_dumpable()


def _set_non_dumpable() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise DoorwardError(f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(err)}; a seccomp "
                            "filter that denies prctl must allow it (systemd: @system-service "
                            "does)")
