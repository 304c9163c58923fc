"""Frigate's event messages and the per-object tracker: lenient parsing, hostile payloads refused
with a reason, budgets, unchanged snapshots, bounded memory."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from face_watchlist.frigate.events import MAX_PAYLOAD_BYTES, FrigateEvent, Refused, Snapshot, parse_event
from face_watchlist.frigate.tracker import Filters, Step, Tracker

SAMPLES = Path(__file__).parent / "data" / "frigate" / "frigate-mqtt-samples.jsonl"


def samples(topic: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    return [r["payload"] for r in rows if r["topic"] == topic]


def event(**changes: Any) -> FrigateEvent:
    base: dict[str, Any] = {
        "type": "update",
        "id": "1.0-abc",
        "camera": "front_door",
        "label": "person",
        "sub_label": None,
        "box": (10.0, 10.0, 50.0, 120.0),
        "zones": ("entrance",),
        "has_snapshot": True,
        "snapshot": Snapshot(1.0, (10.0, 10.0, 50.0, 120.0)),
        "false_positive": False,
        "start_time": 1.0,
        "end_time": None,
        "face_attribute_score": None,
    }
    base.update(changes)
    return FrigateEvent(**base)


def test_documented_samples_parse() -> None:
    events = [parse_event(json.dumps(p)) for p in samples("frigate/events")]
    assert [e.type for e in events] == ["new", "update", "update", "end", "new"]
    first = events[0]
    assert (first.camera, first.label, first.zones) == ("front_door", "person", ("front_entrance",))
    assert first.snapshot == Snapshot(1764150000.523456, (612.0, 188.0, 742.0, 530.0))
    assert events[3].end_time is not None
    assert events[4].sub_label == "Jane Staff"  # [name, score] form


def test_the_samples_through_the_tracker() -> None:
    tracker = Tracker()
    steps = [tracker.step(parse_event(json.dumps(p))) for p in samples("frigate/events")]
    assert [(s.action, s.reason) for s in steps[:4]] == [
        ("attempt", "new snapshot"),
        ("attempt", "new snapshot"),  # better snapshot
        ("skip", "snapshot unchanged"),  # zone update, same picture
        ("skip", "ended"),  # nothing new at the end
    ]
    assert steps[3].final
    assert len(tracker) == 1  # the ended object is forgotten; the second one is tracked


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b'{"type": "bogus", "after": {}}', "unknown event type"),
        (b'{"type": "new"}', "no 'after'"),
        (b'{"type": "new", "after": []}', "no 'after'"),
        (b'{"type": "new", "after": {"camera": "c", "label": "person"}}', "id"),
        (b'{"type": "new", "after": {"id": 5, "camera": "c", "label": "person"}}', "id"),
        (b'{"type": "new", "after": {"id": "x", "camera": ["c"], "label": "person"}}', "camera"),
        (
            b'{"type": "new", "after": {"id": "x", "camera": "c", "label": "person", "start_time": "soon"}}',
            "start",
        ),
        (
            b'{"type": "new", "after": {"id": "x", "camera": "c", "label": "person", "start_time": NaN}}',
            "start",
        ),
        (b'{"type": "end", "after": {"id": "x", "camera": "c", "label": "person", "end_time": true}}', "end"),
        (
            json.dumps({"type": "new", "after": {"id": "x" * 10_000, "camera": "c", "label": "p"}}).encode(),
            "id",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "over"),
    ],
)
def test_hostile_payloads_are_refused_with_a_reason(payload: bytes, why: str) -> None:
    with pytest.raises(Refused, match=why):
        parse_event(payload)


def test_odd_optional_fields_are_ignored_not_fatal() -> None:
    message = {
        "type": "update",
        "after": {
            "id": "x",
            "camera": "c",
            "label": "person",
            "box": [1, 2, "three", 4],
            "entered_zones": "not a list",
            "snapshot": {"frame_time": "yesterday"},
            "sub_label": 42,
            "attributes": {"face": True},
            "has_snapshot": "yes",
            "unknown_future_field": {"deep": [1, 2, 3]},
        },
    }
    parsed = parse_event(json.dumps(message))
    assert (parsed.box, parsed.zones, parsed.snapshot, parsed.sub_label) == (None, (), None, None)
    assert (parsed.face_attribute_score, parsed.has_snapshot) == (None, False)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["new", "update", "end", "x", None]),
    after=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "camera",
                "label",
                "box",
                "snapshot",
                "entered_zones",
                "sub_label",
                "start_time",
                "end_time",
                "has_snapshot",
                "attributes",
                "false_positive",
                "other",
            ]
        ),
        JSONISH,
    ),
)
def test_any_json_either_parses_or_is_refused(kind: Any, after: dict[str, Any]) -> None:
    payload = json.dumps({"type": kind, "after": after}, allow_nan=True)
    try:
        parsed = parse_event(payload)
    except Refused:
        return
    assert isinstance(parsed.id, str) and parsed.id  # noqa: PT018
    Tracker().step(parsed)  # and the tracker copes with whatever parsed


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_either_parse_or_are_refused(data: bytes) -> None:
    with contextlib.suppress(Refused):
        parse_event(data)


def test_budget_and_unchanged_snapshots() -> None:
    tracker = Tracker(budget=2)
    assert tracker.step(event(type="new")).action == "attempt"
    assert tracker.step(event()).reason == "snapshot unchanged"
    second = tracker.step(event(snapshot=Snapshot(2.0, None)))
    assert (second.action, second.attempt) == ("attempt", 2)
    assert "budget" in tracker.step(event(snapshot=Snapshot(3.0, None))).reason
    end = tracker.step(event(type="end", snapshot=Snapshot(4.0, None)))
    assert (end.action, end.final) == ("skip", True)  # budget used: no last look
    assert len(tracker) == 0


def test_a_last_look_at_the_end_when_the_snapshot_is_new() -> None:
    tracker = Tracker()
    tracker.step(event(type="new"))
    end = tracker.step(event(type="end", snapshot=Snapshot(9.0, None)))
    assert (end.action, end.final, end.attempt) == ("attempt", True, 2)


def test_settled_objects_are_not_tried_again() -> None:
    tracker = Tracker()
    tracker.step(event(type="new"))
    tracker.settle("1.0-abc")
    assert tracker.step(event(snapshot=Snapshot(5.0, None))).reason == "already decided"
    assert tracker.step(event(type="end", snapshot=Snapshot(6.0, None))) == Step("skip", "ended", final=True)


def test_no_snapshot_yet() -> None:
    assert Tracker().step(event(type="new", has_snapshot=False, snapshot=None)).reason == "no snapshot yet"


@pytest.mark.parametrize(
    ("filters", "changes", "reason"),
    [
        (Filters(), {"label": "car"}, "label not watched"),
        (Filters(cameras=frozenset({"gate"})), {}, "camera not watched"),
        (Filters(zones=frozenset({"lobby"})), {}, "not in a watched zone"),
        (Filters(), {"false_positive": True}, "false positive"),
    ],
)
def test_filters(filters: Filters, changes: dict[str, Any], reason: str) -> None:
    tracker = Tracker(filters=filters)
    step = tracker.step(event(type="new", **changes))
    assert (step.action, step.reason) == ("skip", reason)
    assert len(tracker) == 0


def test_memory_is_bounded() -> None:
    tracker = Tracker(max_objects=100)
    for n in range(10_000):
        tracker.step(event(type="new", id=f"{n}.0-x"))
    assert len(tracker) == 100
    # the most recent objects are the ones kept
    assert tracker.step(event(id="9999.0-x")).reason == "snapshot unchanged"
