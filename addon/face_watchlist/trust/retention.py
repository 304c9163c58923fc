"""Retention: what is deleted when, by one purge that runs at start, periodically and on demand.

The schedule (options `retention`): match evidence (face crop, snapshot, probe embedding) goes
`evidence_days` after the decision once reviewed, `pending_days` after it while unreviewed;
decision rows (no face in them) go `decisions_days` after the decision once their evidence is
gone; files a crash left behind go too. Enrolment photos and templates stay while the person is on
a list (removing a person removes them). Faces that matched nobody are never stored at all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from face_watchlist.gallery.records import Records

DAY = 86_400.0


def purge(
    records: Records,
    retention: Mapping[str, Any],
    *,
    now: float | None = None,
    dry_run: bool = False,
    actor: str = "service",
) -> dict[str, int]:
    """Apply the schedule; returns what was (or, with `dry_run`, would be) removed. Every real
    purge that removed something leaves one audit entry with the counts."""
    now = time.time() if now is None else now
    counts = {
        "evidence": records.purge_evidence(
            now - retention["evidence_days"] * DAY, now - retention["pending_days"] * DAY, dry_run=dry_run
        ),
        "decisions": records.purge_decisions(now - retention["decisions_days"] * DAY, dry_run=dry_run),
        "stray_evidence_files": 0 if dry_run else records.sweep_evidence(),
        "stray_photo_files": 0 if dry_run else records.store.sweep_photos(),
    }
    if not dry_run and any(counts.values()):
        with records.store.transaction():
            records.store.record("purge", None, {**counts, "retention": dict(retention)}, actor)
    return counts
