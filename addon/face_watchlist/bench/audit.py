"""Audit log speed: the cost of one append (its own transaction, as a gallery change commits) and
the time `audit verify` takes over N entries, on a real gallery database in a temporary folder."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from face_watchlist.gallery.store import Store

TIMED_APPENDS = 20_000  # appends timed one by one; the rest of N is filled in batches


def _details(n: int) -> dict[str, object]:
    """What a typical entry carries (an enrolment)."""
    return {
        "photo_id": n,
        "photo_sha256": f"{n:064x}",
        "template_id": n,
        "pack": "opencv-zoo",
        "source": f"registry.csv:{n + 2}",
        "method": "import",
        "list_id": 1,
    }


def run_audit(entries: int, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        store = Store(Path(tmp), actor="cli:bench")
        try:
            log = store.audit
            timed = min(entries, TIMED_APPENDS)
            costs = []
            for n in range(timed):
                started = time.perf_counter()
                log.append("cli:bench", "photo.enrol", f"person:{n}", _details(n))
                costs.append(time.perf_counter() - started)
            batch_started = time.perf_counter()
            for start in range(timed, entries, 10_000):
                with store.transaction() as db:
                    for n in range(start, min(entries, start + 10_000)):
                        log.append("cli:bench", "photo.enrol", f"person:{n}", _details(n), conn=db)
            batched = entries - timed
            batch_us = (time.perf_counter() - batch_started) / batched * 1e6 if batched else None
            report = log.verify()
            size = sum(p.stat().st_size for p in Path(tmp).glob("gallery.sqlite3*"))
        finally:
            store.close()
    costs_us = sorted(c * 1e6 for c in costs)
    return {
        "entries": entries,
        "append_us_mean": round(statistics.fmean(costs_us), 1) if costs_us else None,
        "append_us_p50": round(costs_us[len(costs_us) // 2], 1) if costs_us else None,
        "append_us_p99": round(costs_us[int(len(costs_us) * 0.99)], 1) if costs_us else None,
        "timed_appends": timed,
        "append_us_in_batches": round(batch_us, 1) if batch_us else None,
        "verify_s": round(report.seconds, 2),
        "verify_ok": report.ok,
        "verify_us_per_entry": round(report.seconds / max(entries, 1) * 1e6, 2),
        "database_mb": round(size / 1e6, 1),
        "note": "each timed append is its own transaction (WAL, synchronous=NORMAL: no fsync per commit)",
    }
