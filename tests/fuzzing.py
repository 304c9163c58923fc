"""How hard the fuzz tests push: a bounded count in the normal suite, the issue's targets with
`FACE_WATCHLIST_FUZZ=long` (e.g. `FACE_WATCHLIST_FUZZ=long pytest tests/test_fuzz_*.py`)."""

from __future__ import annotations

import os

LONG = os.environ.get("FACE_WATCHLIST_FUZZ", "").lower() == "long"


def examples(normal: int, long: int) -> int:
    """Hypothesis examples per test: `normal` in the everyday suite, `long` in the long profile."""
    return long if LONG else normal
