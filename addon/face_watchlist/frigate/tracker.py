"""Per tracked object state over Frigate's `new` / `update` / `end`: when to try for a face.

Pure and bounded: the tracker decides, the caller captures and matches. An object gets at most
`budget` attempts, one per new snapshot (same `snapshot.frame_time` = same picture, skipped),
stops once a confident decision is in, and is forgotten when it ends (or, past `max_objects`,
when it is the least recently seen).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from face_watchlist.frigate.events import FrigateEvent

Action = Literal["attempt", "skip"]


@dataclass(frozen=True)
class Filters:
    cameras: frozenset[str] = frozenset()  # empty: every camera
    zones: frozenset[str] = frozenset()  # empty: anywhere; else the object must enter one
    labels: frozenset[str] = frozenset({"person"})


@dataclass
class _Object:
    camera: str
    attempts: int = 0
    last_frame_time: float | None = None
    settled: bool = False  # a confident decision is in: no more attempts


@dataclass(frozen=True)
class Step:
    action: Action
    reason: str
    attempt: int = 0  # 1-based number of this attempt, for "attempt"
    final: bool = False  # the object ended: after this step, publish its final decision


@dataclass
class Tracker:
    filters: Filters = field(default_factory=Filters)
    budget: int = 5
    max_objects: int = 1000
    _objects: OrderedDict[str, _Object] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._objects)

    def step(self, event: FrigateEvent) -> Step:
        """What to do for this message; an "attempt" counts against the object's budget."""
        why = self._filtered(event)
        if why:
            self._objects.pop(event.id, None)
            return Step("skip", why)
        state = self._objects.get(event.id)
        if state is None:
            state = self._objects[event.id] = _Object(event.camera)
            while len(self._objects) > self.max_objects:
                self._objects.popitem(last=False)
        self._objects.move_to_end(event.id)
        if event.type == "end":
            del self._objects[event.id]
            if state.settled or state.attempts >= self.budget or not self._new_picture(state, event):
                return Step("skip", "ended", final=True)
            # a last look at the final best snapshot, when it is one we have not tried
            return self._attempt(state, event, final=True)
        if state.settled:
            return Step("skip", "already decided")
        if state.attempts >= self.budget:
            return Step("skip", "attempt budget used")
        if not event.has_snapshot or event.snapshot is None:
            return Step("skip", "no snapshot yet")
        if not self._new_picture(state, event):
            return Step("skip", "snapshot unchanged")
        return self._attempt(state, event)

    def settle(self, event_id: str) -> None:
        """Record a confident decision: later updates of this object are skipped."""
        state = self._objects.get(event_id)
        if state is not None:
            state.settled = True

    @staticmethod
    def _attempt(state: _Object, event: FrigateEvent, final: bool = False) -> Step:
        assert event.snapshot is not None  # _new_picture checked it
        state.attempts += 1
        state.last_frame_time = event.snapshot.frame_time
        return Step("attempt", "new snapshot", state.attempts, final)

    @staticmethod
    def _new_picture(state: _Object, event: FrigateEvent) -> bool:
        return event.snapshot is not None and event.snapshot.frame_time != state.last_frame_time

    def _filtered(self, event: FrigateEvent) -> str:
        f = self.filters
        # fixed texts: the service counts skips by reason, and names come from the network
        if event.label not in f.labels:
            return "label not watched"
        if f.cameras and event.camera not in f.cameras:
            return "camera not watched"
        if f.zones and not f.zones.intersection(event.zones):
            return "not in a watched zone"
        if event.false_positive:
            return "false positive"
        return ""
