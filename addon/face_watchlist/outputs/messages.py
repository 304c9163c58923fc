"""What the service publishes, as pure functions from a decision to MQTT topics and payloads.

Topics live under `face_watchlist/`: one JSON message per decision on `events`, retained state per
camera (`cameras/<camera>/last`) and availability with a Will message. Home Assistant discovery,
Frigate's sub_label and HA Core events read the same `DecisionMessage`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

Result = Literal["match", "unknown", "no_face"]
PREFIX = "face_watchlist"


@dataclass(frozen=True)
class DecisionMessage:
    event_id: str
    camera: str
    result: Result
    person: str | None  # display name, or None
    person_id: int | None
    list: str | None
    list_kind: str | None
    review_state: str | None  # "pending_review" (review_first lists) or "alert" (immediate); None
    score: float | None  # raw cosine of the closest person, None without a face
    margin: float | None
    false_match_rate: float | None
    attempts: int
    faces_seen: int
    final: bool  # the tracked object ended: this is the last word on it
    timing_ms: dict[str, float]
    timestamp: float

    def payload(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


def topic_segment(name: str) -> str:
    """A camera name as one MQTT topic level (no wildcards or separators)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "_"


def events_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/events"


def camera_topic(camera: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/cameras/{topic_segment(camera)}/last"


def available_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/available"
