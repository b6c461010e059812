"""Keep large NumPy temporaries in the heap instead of fresh mmaps (glibc only).

The engine allocates and frees arrays of many megabytes per chunk.  By
default glibc serves such allocations with ``mmap`` and returns them with
``munmap``, so every temporary costs page faults and kernel zeroing — about a
quarter of the engine's time on a 1 M-row chunk.  Raising the mmap and trim
thresholds lets freed memory be reused.  Applied only in processes gpuprune
owns (pool workers, the command line), never silently in a user's interpreter.
"""

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_done = False


def tune_malloc(mmap_threshold=1 << 30, trim_threshold=4 << 30, top_pad=256 << 20):
    """Set glibc's malloc thresholds for this process; returns True if applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or no libc: nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, min(value, 2 ** 31 - 1)) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad)))
    _done = ok
    return ok
