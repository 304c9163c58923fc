"""The service's MQTT payloads as typed values (no Home Assistant imports).

Parsing is strict about what the integration relies on and lenient about the rest: a message
that lacks a required field raises ValueError and is skipped by the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RESULTS = ("match", "unknown", "no_face")


def _object(payload: str | bytes | bytearray) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from err
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision about a tracked person (the service's `face_watchlist/events` message)."""

    event_id: str
    camera: str
    result: str
    timestamp: float
    person: str | None = None
    person_id: int | None = None
    list: str | None = None
    list_kind: str | None = None
    review_state: str | None = None
    decision_id: int | None = None
    score: float | None = None
    margin: float | None = None
    false_match_rate: float | None = None
    final: bool = False
    has_face: bool = False
    has_snapshot: bool = False

    @classmethod
    def parse(cls, payload: str | bytes | bytearray) -> Decision:
        body = _object(payload)
        event_id, camera, result = body.get("event_id"), body.get("camera"), body.get("result")
        if not isinstance(event_id, str) or not isinstance(camera, str) or not camera:
            raise ValueError("decision without event_id or camera")
        if result not in RESULTS:
            raise ValueError(f"unknown result {result!r}")
        timestamp = _opt_float(body, "timestamp")
        evidence = body.get("evidence") if isinstance(body.get("evidence"), dict) else {}
        return cls(
            event_id=event_id,
            camera=camera,
            result=result,
            timestamp=timestamp if timestamp is not None else 0.0,
            person=_opt_str(body, "person"),
            person_id=_opt_int(body, "person_id"),
            list=_opt_str(body, "list"),
            list_kind=_opt_str(body, "list_kind"),
            review_state=_opt_str(body, "review_state"),
            decision_id=_opt_int(body, "decision_id"),
            score=_opt_float(body, "score"),
            margin=_opt_float(body, "margin"),
            false_match_rate=_opt_float(body, "false_match_rate"),
            final=body.get("final") is True,
            has_face=bool(evidence and evidence.get("face")),
            has_snapshot=bool(evidence and evidence.get("snapshot")),
        )

    @property
    def is_match(self) -> bool:
        return self.result == "match"

    @property
    def is_watch_alert(self) -> bool:
        """A match on a watch list that someone should look at (not a rejected one)."""
        return self.is_match and self.list_kind == "watch" and self.review_state != "rejected"


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's verdict on a match (the service's `face_watchlist/reviews` message)."""

    decision_id: int
    camera: str
    review_state: str
    event_id: str | None = None
    person: str | None = None
    person_id: int | None = None
    list: str | None = None
    reviewer: str | None = None
    timestamp: float | None = None

    @classmethod
    def parse(cls, payload: str | bytes | bytearray) -> Review:
        body = _object(payload)
        decision_id, camera = _opt_int(body, "decision_id"), _opt_str(body, "camera")
        review_state = _opt_str(body, "review_state")
        if decision_id is None or not camera or review_state is None:
            raise ValueError("review without decision_id, camera or review_state")
        return cls(
            decision_id=decision_id,
            camera=camera,
            review_state=review_state,
            event_id=_opt_str(body, "event_id"),
            person=_opt_str(body, "person"),
            person_id=_opt_int(body, "person_id"),
            list=_opt_str(body, "list"),
            reviewer=_opt_str(body, "reviewer"),
            timestamp=_opt_float(body, "timestamp"),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """The service's status (MQTT `face_watchlist/status`, `GET /api/status`)."""

    instance_id: str
    version: str | None = None
    pack: str | None = None
    mqtt: str | None = None
    frigate: str | None = None
    queue_depth: int | None = None
    pending_reviews: int | None = None
    matches_today: int | None = None
    cameras: tuple[str, ...] = ()
    people_per_list: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Status:
        instance_id = body.get("instance_id")
        if not isinstance(instance_id, str) or not instance_id:
            raise ValueError("status without instance_id")
        cameras = body.get("cameras")
        people = body.get("people_per_list")
        return cls(
            instance_id=instance_id,
            version=_opt_str(body, "version"),
            pack=_opt_str(body, "pack"),
            mqtt=_opt_str(body, "mqtt"),
            frigate=_opt_str(body, "frigate"),
            queue_depth=_opt_int(body, "queue_depth"),
            pending_reviews=_opt_int(body, "pending_reviews"),
            matches_today=_opt_int(body, "matches_today"),
            cameras=tuple(c for c in cameras if isinstance(c, str)) if isinstance(cameras, list) else (),
            people_per_list=(
                {str(k): v for k, v in people.items() if isinstance(v, int)}
                if isinstance(people, dict)
                else {}
            ),
        )

    @classmethod
    def parse(cls, payload: str | bytes | bytearray) -> Status:
        return cls.from_dict(_object(payload))
