"""agent.runtime.malloc: the daemon fixes glibc's mmap threshold (no effect elsewhere)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_fixed_threshold_and_large_buffers_go_back_to_the_system() -> None:
    # In a child process: the setting is process-wide. After a 4 MiB block is freed, glibc would
    # raise its threshold and serve the next 2 MiB buffers from the heap; fixed at 1 MiB, they are
    # mapped and unmapped, so the heap does not grow by them.
    code = """
import ctypes
from agent.runtime.malloc import fix_mmap_threshold
assert fix_mmap_threshold(1024 * 1024)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.sbrk.restype = ctypes.c_void_p
libc.free(libc.malloc(4 << 20))
start = libc.sbrk(0)
blocks = [libc.malloc(2 << 20) for _ in range(8)]
grown = libc.sbrk(0) - start
for b in blocks:
    libc.free(b)
print(grown)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 1 << 20, out.stdout  # 16 MiB of buffers, not on the heap


@pytest.mark.skipif(platform.system() != "Linux", reason="Linux prctl")
def test_transparent_huge_pages_are_turned_off_for_the_process() -> None:
    # In a child process: the flag is process-wide and inherited. /proc/self/status shows it
    # (THP_enabled, Linux >= 5.0).
    code = """
from agent.runtime.malloc import disable_transparent_hugepages
def thp():
    for line in open('/proc/self/status'):
        if line.startswith('THP_enabled:'):
            return line.split()[1]
before = thp()
print(before, disable_transparent_hugepages(), thp())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "0"], out.stdout
