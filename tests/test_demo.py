"""The one-command demo: a real Mosquitto, the Frigate simulator, the service and the real models."""

from __future__ import annotations

import re
import socket
import tempfile
from pathlib import Path

import pytest

from face_watchlist import demo
from face_watchlist.errors import FaceWatchlistError


async def test_demo_once_shows_the_three_outcomes(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.find_mosquitto()  # a missing broker is a broken set-up, as in the `broker` fixture
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the demo's data directory goes
    lines: list[str] = []
    assert await demo.run_demo(model_dir, once=True, out=lines.append) == 0
    decisions = [line for line in lines if line.startswith("decision ")]
    assert any(
        "result=match" in d and "person=obama" in d and "list=visitors" in d and "-enrolled)" in d
        for d in decisions
    ), lines
    assert any("result=unknown" in d and "person=-" in d and "-stranger)" in d for d in decisions), lines
    assert any("result=no_face" in d and "-noface)" in d and "(final" in d for d in decisions), lines
    assert lines[-1] == "demo: all 3 decisions arrived; stopping"
    # everything it started is gone: the temporary data directory and the broker
    assert list(tmp_path.iterdir()) == []
    found = re.search(r"Mosquitto on 127\.0\.0\.1:(\d+)", "\n".join(lines))
    assert found is not None
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", int(found[1])), 1):
        pass


def test_demo_needs_the_sample_photos(tmp_path: Path) -> None:
    with pytest.raises(FaceWatchlistError, match="source checkout"):
        demo.demo_data(tmp_path)


def test_demo_line_is_readable() -> None:
    line = demo.describe(
        {
            "event_id": "1.0-x",
            "camera": "front_door",
            "result": "match",
            "person": "obama",
            "list": "visitors",
            "score": 0.71234,
            "review_state": "pending_review",
            "final": False,
            "timing_ms": {"total_ms": 212.5},
        }
    )
    assert line == (
        "decision  camera=front_door  result=match  person=obama  list=visitors  score=0.712  "
        "review=pending_review  total=212 ms  (early, event 1.0-x)"
    )
