"""The load benchmark, short: cameras bursting through a real Mosquitto with a tiny queue so that
attempts are dropped. Every object still gets its decision, the drops are counted exactly (one per
object never looked at) and reported the same by /api/status, health answers throughout. The
full run (`face-watchlist bench load`, 16 cameras, 20/s for 2 minutes) prints the figures."""

from __future__ import annotations

import json
from pathlib import Path

from face_watchlist.cli import main


def test_a_short_burst_loses_nothing_and_counts_its_drops(model_dir: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    rate, dwell, queue = 30.0, 1.0, 2
    argv = ["--model-dir", str(model_dir), "bench", "load", "--cameras", "4", "--rate", str(rate)]
    argv += ["--seconds", "3", "--dwell", str(dwell), "--idle", "1", "--queue-size", str(queue)]
    assert main([*argv, "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    sent = report["objects_sent"]
    assert sent == 90
    assert (report["decided"], report["lost"]) == (sent, 0)
    assert report["errors"] == 0
    # every dropped attempt is one object that was never looked at, and the status says the same
    assert report["dropped_queue_full"] > 0, "the burst did not overflow a queue of 2"
    assert report["dropped_queue_full"] == report["never_looked_at"]
    assert report["dropped_reported_by_status"] == report["dropped_queue_full"]
    assert sum(report["results"].values()) == sent
    # attempts wait within the bound; only the objects' last words (ends) may queue past it
    assert report["queue_max_depth"] <= queue + rate * (dwell + 1)
    health = report["health_ms"]
    assert health["requests"] >= 10 and health["failures"] == 0  # noqa: PT018
    assert report["rss_mb"]["baseline"] > 0
