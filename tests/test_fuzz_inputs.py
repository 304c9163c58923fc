"""Fuzzing the parsers that take outside input: Frigate's MQTT events (real samples mutated field by
field, and raw bytes), the configuration schema, and the registry CSV. The property is the same for
each: a clear refusal (`Refused`, `FaceWatchlistError`, a row error) or a well-formed result, never
another exception. Counts: see tests/fuzzing.py (`FACE_WATCHLIST_FUZZ=long`: 10,000 MQTT payloads
per test)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from face_watchlist.config import SCHEMA, Settings, load_settings
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.frigate.events import MAX_TEXT, Refused, parse_event
from face_watchlist.frigate.tracker import Tracker
from face_watchlist.gallery.enroll import parse_registry
from fuzzing import examples

SAMPLES = Path(__file__).parent / "data" / "frigate" / "frigate-mqtt-samples.jsonl"
EVENTS = [
    row["payload"]
    for row in map(json.loads, SAMPLES.read_text().splitlines())
    if row["topic"] == "frigate/events"
]
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.dumps writes them, Python's json reads them
    | st.text(max_size=40)
    | st.sampled_from(["", "new", "end", "person", "front_door", "x" * (MAX_TEXT + 1), "\x00", "../.."]),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += _paths(sub, (*prefix, index))
    return found


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A real Frigate event with a few of its fields replaced, removed or doubled, then encoded;
    sometimes with its bytes damaged as well."""
    message = copy.deepcopy(draw(st.sampled_from(EVENTS)))
    for _ in range(draw(st.integers(1, 6))):
        paths = _paths(message)
        if not paths:
            break
        *parent_path, last = draw(st.sampled_from(paths))
        parent = message
        for key in parent_path:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "nest"]))
        if action == "remove":
            del parent[last]
        elif action == "nest":
            parent[last] = [parent[last]] * draw(st.integers(0, 3))
        else:
            parent[last] = draw(ANY_JSON)
    data = json.dumps(message, allow_nan=True).encode()
    if draw(st.integers(0, 9)) == 0:  # one in ten: damaged on the wire
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 8)) :]
    return data


def _parses_or_refuses(payload: bytes, tracker: Tracker) -> None:
    try:
        parsed = parse_event(payload)
    except Refused as reason:
        refusal = str(reason)
        assert refusal, "a refusal says why"
        return
    assert parsed.type in ("new", "update", "end")
    assert all(
        isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in (parsed.id, parsed.camera, parsed.label)
    )
    assert math.isfinite(parsed.start_time)
    if parsed.box is not None:
        x1, y1, x2, y2 = parsed.box
        assert x2 > x1 and y2 > y1  # noqa: PT018
    tracker.step(parsed)  # and the tracker copes with whatever parsed


@settings(FUZZ, max_examples=examples(500, 10_000))
@given(mutated_event())
def test_mutated_frigate_events_parse_or_are_refused(payload: bytes) -> None:
    _parses_or_refuses(payload, Tracker())


@settings(FUZZ, max_examples=examples(300, 10_000))
@given(
    st.one_of(
        st.binary(max_size=4096),
        ANY_JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),  # deep nesting
        st.integers(1, 3000).map(lambda depth: b'{"type":"new","after":' * depth + b"{}" + b"}" * depth),
    )
)
def test_any_payload_parses_or_is_refused(payload: bytes) -> None:
    _parses_or_refuses(payload, Tracker())


def test_an_oversized_payload_is_refused_before_parsing() -> None:
    message = dict(EVENTS[0])
    message["padding"] = "x" * (1 << 20)
    with contextlib.suppress(Refused):
        parse_event(json.dumps(message))
        raise AssertionError("a 1 MB payload was parsed")


# --- configuration ------------------------------------------------------------------------------


def _keys(schema: vol.Schema) -> dict[str, Any]:
    """Option block -> its option names, read from the schema itself so new options are fuzzed too."""
    blocks: dict[str, Any] = {}
    for marker, sub in schema.schema.items():
        name = str(marker.schema)
        blocks[name] = [str(m.schema) for m in sub.schema] if isinstance(sub, vol.Schema) else None
    return blocks


BLOCKS = _keys(SCHEMA)
VALUES = ANY_JSON | st.sampled_from([0, 1, -1, 65536, 1.5, "1883", "127.0.0.1", "opencv-zoo", [], {}])


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for block in draw(st.lists(st.sampled_from([*BLOCKS, "unknown"]), max_size=4, unique=True)):
        names = BLOCKS.get(block)
        if names is None or draw(st.integers(0, 9)) == 0:
            raw[block] = draw(VALUES)  # a block that is not a mapping, or a plain option's value
        else:
            keys = st.sampled_from([*names, "unknown_option"])
            raw[block] = draw(st.dictionaries(keys, VALUES, max_size=len(names)))
    return raw


@settings(FUZZ, max_examples=examples(300, 3000))
@given(options())
def test_any_options_load_or_name_the_problem(raw: dict[str, Any]) -> None:
    try:
        loaded = load_settings(raw)
    except FaceWatchlistError as err:
        message = str(err)
        assert message.startswith("invalid configuration: ")
        assert "\n" not in message  # one line, for the add-on's log
        return
    assert isinstance(loaded, Settings)
    assert 1 <= loaded.mqtt["port"] <= 65535
    assert loaded.max_pixels >= 1


# --- registry CSV -------------------------------------------------------------------------------

CELLS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["", " ", "..", "../x.jpg", "/etc/passwd", "C:\\x.jpg", "a.jpg", "sub/b.jpg", '"', "\x00"]
    ),
)


@st.composite
def registry_text(draw: st.DrawFn) -> str:
    header = draw(
        st.permutations(
            ["id", "name", "photo", draw(st.sampled_from(["notes", "ID", " Name ", "", "photo"]))]
        )
    )
    if draw(st.booleans()):
        header = header[: draw(st.integers(0, 4))]
    rows = draw(st.lists(st.lists(CELLS, max_size=6), max_size=12))
    if draw(st.integers(0, 19)) == 0:  # a field over csv's own limit
        rows.append(["1", '"' + "a" * 140_000 + '"', "x.jpg"])
    separator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(header), *(",".join(row) for row in rows)]
    text = separator.join(lines)
    if draw(st.booleans()):  # and raw damage: quotes, NULs, BOMs, truncation
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=6)) + text[at:]
    return text


def _parses_or_refuses_csv(text: str) -> None:
    try:
        rows, errors = parse_registry(text)
    except FaceWatchlistError as err:
        message = str(err)
        assert "registry CSV" in message
        return
    ids = [r.external_id for r in rows]
    assert len(ids) == len(set(ids))
    for row in rows:
        assert row.external_id and row.name and row.photo  # noqa: PT018
        assert not row.photo.startswith(("/", "\\")) and ".." not in row.photo.replace("\\", "/").split("/")  # noqa: PT018
    assert all(e.startswith("line ") for e in errors)


@settings(FUZZ, max_examples=examples(300, 5000))
@given(registry_text())
def test_any_registry_csv_gives_rows_and_line_errors(text: str) -> None:
    _parses_or_refuses_csv(text)


def test_a_field_over_the_csv_limit_is_a_clear_error() -> None:
    # found by fuzzing: csv.Error escaped (a traceback on the command line, "internal error" on the web)
    huge = 'id,name,photo\n1,"' + "a" * 200_000 + '",x.jpg\n'
    with pytest.raises(FaceWatchlistError, match="registry CSV, after line 1: field larger than field limit"):
        parse_registry(huge)


@settings(FUZZ, max_examples=examples(200, 3000))
@given(st.text(max_size=500))
def test_any_text_as_a_registry_csv(text: str) -> None:
    _parses_or_refuses_csv(text)
