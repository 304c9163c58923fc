"""Give freed heap memory back to the system after a burst.

glibc keeps memory freed by Python, numpy and onnxruntime in its arenas: after a burst of events
the resident size would stay at its peak for good. `malloc_trim` returns it. Elsewhere (musl,
macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> bool:
    """True when memory was given back."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
