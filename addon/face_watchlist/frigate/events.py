"""Frigate's `<prefix>/events` messages parsed into plain data, leniently.

Frigate's messages vary across versions and carry fields we do not need; anything we cannot
trust is refused with a reason, never raised. Payloads come from the network: sizes are capped
and every field is type-checked before use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal["new", "update", "end"]
MAX_PAYLOAD_BYTES = 256 * 1024  # a real event is 2-4 KB
MAX_TEXT = 200  # ids, camera and zone names


@dataclass(frozen=True)
class Snapshot:
    frame_time: float
    box: tuple[float, float, float, float] | None  # x1, y1, x2, y2 in detect-frame pixels


@dataclass(frozen=True)
class FrigateEvent:
    type: EventType
    id: str
    camera: str
    label: str
    sub_label: str | None  # whatever Frigate (or a person) already named this object
    box: tuple[float, float, float, float] | None
    zones: tuple[str, ...]  # entered zones
    has_snapshot: bool
    snapshot: Snapshot | None
    false_positive: bool
    start_time: float
    end_time: float | None
    face_attribute_score: float | None  # Frigate+ models label faces: {"face": 0.86}


class Refused(ValueError):
    """Why a payload was not turned into an event."""


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise Refused(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Refused(f"{name} must be a finite number")
    return float(value)


def _box(value: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    try:
        x1, y1, x2, y2 = (_number(v, "box") for v in value)
    except Refused:
        return None
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _sub_label(value: Any) -> str | None:
    # null, "name", or ["name", score] across Frigate versions
    if isinstance(value, list | tuple) and value:
        value = value[0]
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def _zones(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(z for z in value[:50] if isinstance(z, str) and 0 < len(z) <= MAX_TEXT)


def _face_score(attributes: Any) -> float | None:
    if isinstance(attributes, dict):
        score = attributes.get("face")
        if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
            return float(score)
    return None


def parse_event(payload: bytes | str) -> FrigateEvent:
    """One `<prefix>/events` message; raises Refused with the reason when it cannot be used."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Refused(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        raise Refused("payload is not JSON") from None
    if not isinstance(message, dict):
        raise Refused("payload is not a JSON object")
    kind = message.get("type")
    if kind not in ("new", "update", "end"):
        raise Refused(f"unknown event type {str(kind)[:40]!r}")
    after = message.get("after")
    if not isinstance(after, dict):
        raise Refused("no 'after' object")
    snapshot = after.get("snapshot")
    end_time = after.get("end_time")
    return FrigateEvent(
        type=kind,
        id=_text(after.get("id"), "id"),
        camera=_text(after.get("camera"), "camera"),
        label=_text(after.get("label"), "label"),
        sub_label=_sub_label(after.get("sub_label")),
        box=_box(after.get("box")),
        zones=_zones(after.get("entered_zones")),
        has_snapshot=after.get("has_snapshot") is True,
        snapshot=_snapshot(snapshot),
        false_positive=after.get("false_positive") is True,
        start_time=_number(after.get("start_time", 0.0), "start_time"),
        end_time=_number(end_time, "end_time") if end_time is not None else None,
        face_attribute_score=_face_score(after.get("attributes")),
    )


def _snapshot(value: Any) -> Snapshot | None:
    if not isinstance(value, dict):
        return None
    try:
        frame_time = _number(value.get("frame_time"), "snapshot.frame_time")
    except Refused:
        return None
    return Snapshot(frame_time, _box(value.get("box")))
