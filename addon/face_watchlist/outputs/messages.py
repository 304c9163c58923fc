"""What the service publishes, as pure functions from a decision to MQTT topics and payloads.

Topics live under `face_watchlist/` (docs/interfaces.md is the contract): one JSON message per
decision on `events`, retained state per camera and per person, the service status, reviews, and
availability with a Will message. Home Assistant discovery, Frigate's sub_label and HA Core events
read the same `DecisionMessage`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from face_watchlist.trust.schedule import covers

Result = Literal["match", "unknown", "no_face"]
# pending_review: a review_first list, a reviewer must confirm before anyone acts; alert: an
# immediate list; confirmed / rejected: after review
ReviewState = Literal["pending_review", "alert", "confirmed", "rejected"]
PREFIX = "face_watchlist"


@dataclass(frozen=True)
class DecisionMessage:
    event_id: str
    camera: str
    result: Result
    attempts: int
    faces_seen: int
    final: bool  # the tracked object ended: this is the last word on it
    timing_ms: dict[str, float]
    timestamp: float
    person: str | None = None  # display name
    person_id: int | None = None
    list: str | None = None
    list_id: int | None = None
    list_kind: str | None = None
    review_state: ReviewState | None = None
    decision_id: int | None = None  # the record, once stored
    evidence: dict[str, str] | None = None  # API paths of the face crop and the snapshot
    score: float | None = None  # raw cosine of the closest person, None without a face
    margin: float | None = None
    false_match_rate: float | None = None
    template_id: int | None = field(default=None, compare=False)

    def recorded(self, decision_id: int, has_evidence: bool) -> DecisionMessage:
        evidence = (
            {
                "face": f"/api/decisions/{decision_id}/face.jpg",
                "snapshot": f"/api/decisions/{decision_id}/snapshot.jpg",
            }
            if has_evidence
            else None
        )
        return replace(self, decision_id=decision_id, evidence=evidence)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["template_id"]
        return out

    def payload(self) -> bytes:
        return dumps(self.as_dict())


def review_state(policy: str, schedule: str | None = None, when: datetime | None = None) -> ReviewState:
    """The state a new match starts in: by its list's alert policy, and for an immediate list
    its schedule (outside it the match waits for a reviewer instead of alerting)."""
    if policy == "review_first":
        return "pending_review"
    return "alert" if covers(schedule, when or datetime.now()) else "pending_review"


def dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def topic_segment(name: str) -> str:
    """A camera name as one MQTT topic level (no wildcards or separators)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "_"


def events_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/events"


def camera_topic(camera: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/cameras/{topic_segment(camera)}/last"


def person_topic(person_id: int, prefix: str = PREFIX) -> str:
    return f"{prefix}/people/{person_id}/last"


def status_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/status"


def reviews_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/reviews"


def available_topic(prefix: str = PREFIX) -> str:
    return f"{prefix}/available"
