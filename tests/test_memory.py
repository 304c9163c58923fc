"""Freed memory goes back to the system after a burst (glibc's malloc_trim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from face_watchlist import memory


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_gives_freed_small_allocations_back() -> None:
    # many small blocks (below mmap's threshold) stay in glibc's heap when freed
    blocks = [np.ones(16_000, np.uint8) for _ in range(20_000)]  # ~320 MB of 16 kB blocks
    before_free = _rss_kb()
    del blocks
    kept = _rss_kb()
    assert memory.trim() is True
    after = _rss_kb()
    assert before_free - after > 200_000  # most of the 320 MB is back with the system
    assert after <= kept
