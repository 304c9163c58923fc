"""Frigate `sub_label` write-back (opt-in): the matched person's name on Frigate's event.

Two writers fight over a sub_label when Frigate's own face recognition is on (Double Take's
trap): the event's current sub_label is read first and one written by Frigate or by a person is
kept unless `frigate.sub_label_overwrite` says otherwise. The list's review policy is respected:
with `sub_label_when: confirmed` a review_first match is written only once a reviewer confirmed
it (an immediate list's alert is written at once), and a rejection takes our label back off.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp

from face_watchlist.frigate.client import (
    FrigateAuthError,
    FrigateClient,
    FrigateError,
    FrigateNotFound,
)
from face_watchlist.outputs.base import Bus
from face_watchlist.outputs.retry import Backoff, Jobs

LOG = logging.getLogger(__name__)
REMEMBER = 1024  # decisions and events kept in memory for reviews and rejections


@dataclass(frozen=True)
class _Job:
    action: str  # "write" | "clear"
    event_id: str
    name: str = ""
    score: float = 1.0


def frigate_score(score: Any) -> float:
    """Frigate accepts (0, 1]; a match's cosine may be anything in [-1, 1]."""
    value = float(score) if isinstance(score, int | float) else 1.0
    return round(min(max(value, 0.01), 1.0), 4)


class SubLabel:
    name = "sub_label"
    topics: tuple[str, ...] = ()

    def __init__(
        self,
        frigate: dict[str, Any],
        *,
        backoff: Backoff | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.url, self.username, self.password = frigate["url"], frigate["username"], frigate["password"]
        self.when: str = frigate["sub_label_when"]
        self.overwrite: bool = frigate["sub_label_overwrite"]
        self.jobs: Jobs[_Job] = Jobs("Frigate sub_label", backoff or Backoff())
        self.stats = self.jobs.stats
        self.frigate_recognition: bool | None = None  # unknown until /api/config answered
        self._timeout_s = timeout_s
        self._scores: OrderedDict[int, float] = OrderedDict()  # decision id -> score, for reviews
        self._written: OrderedDict[str, str] = OrderedDict()  # event id -> the name we wrote

    # the service's calls ----------------------------------------------------------------------

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        event_id, person = data.get("event_id"), data.get("person")
        if not isinstance(event_id, str) or not isinstance(person, str):
            return
        state = data.get("review_state")
        if kind == "decision" and data.get("result") == "match":
            if isinstance(data.get("decision_id"), int):
                _remember(self._scores, data["decision_id"], frigate_score(data.get("score")))
            if self.when == "match" or state in ("alert", "confirmed"):
                self.jobs.put(_Job("write", event_id, person, frigate_score(data.get("score"))))
        elif kind == "review" and state == "confirmed":
            score = self._scores.get(data.get("decision_id") or -1, 1.0)  # a person confirmed it
            self.jobs.put(_Job("write", event_id, person, score))
        elif kind == "review" and state == "rejected":
            self.jobs.put(_Job("clear", event_id, person))

    def message(self, topic: str, payload: bytes) -> None:
        return None

    async def connected(self, bus: Bus) -> None:
        return None

    async def run(self, bus: Bus) -> None:
        async with aiohttp.ClientSession() as session:
            client = FrigateClient(session, self.url, self.username, self.password, timeout_s=self._timeout_s)
            await self._check(client)

            async def handle(job: _Job) -> None:
                await self._handle(client, job)

            # a refused login or a request Frigate calls invalid will not improve by waiting
            permanent: tuple[type[BaseException], ...] = (FrigateAuthError, ValueError)
            await self.jobs.run(handle, permanent)

    # the work ---------------------------------------------------------------------------------

    async def _check(self, client: FrigateClient) -> None:
        """Say at start whether Frigate recognises faces itself (then its sub_labels are kept)."""
        try:
            config = await client.config()
        except FrigateError as err:
            LOG.warning("sub_label write-back: cannot read Frigate's config yet (%s)", err)
            return
        face = config.get("face_recognition")
        self.frigate_recognition = bool(isinstance(face, dict) and face.get("enabled"))
        if self.frigate_recognition:
            LOG.warning(
                "Frigate's own face recognition is on: sub_labels it writes are %s",
                "overwritten (frigate.sub_label_overwrite)"
                if self.overwrite
                else "kept, ours go only on unlabelled events",
            )
        else:
            LOG.info("sub_label write-back on (%s); Frigate's face recognition is off", self.when)

    async def _handle(self, client: FrigateClient, job: _Job) -> None:
        if self.frigate_recognition is None:
            await self._check(client)
        try:
            event = await client.event(job.event_id)
        except FrigateNotFound:
            self.stats["event_gone"] += 1
            LOG.info("Frigate has no event %s any more: no sub_label", job.event_id)
            return
        current = event.get("sub_label") or None
        ours = self._written.get(job.event_id)
        if job.action == "clear":
            if current is not None and current == ours:
                await client.clear_sub_label(job.event_id)
                self._written.pop(job.event_id, None)
                self.stats["cleared"] += 1
                LOG.info("sub_label %r taken off %s (the match was rejected)", ours, job.event_id)
            return
        if current == job.name:
            _remember(self._written, job.event_id, job.name)
            return
        if current is not None and current != ours and not self.overwrite:
            self.stats["kept_existing"] += 1
            LOG.info(
                "kept sub_label %r on %s (written by Frigate's face recognition or a person); not writing %r",
                current,
                job.event_id,
                job.name,
            )
            return
        await client.set_sub_label(job.event_id, job.name, job.score)
        _remember(self._written, job.event_id, job.name)
        self.stats["written"] += 1
        LOG.info("sub_label %r (%.2f) written on %s", job.name, job.score, job.event_id)


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > REMEMBER:
        cache.popitem(last=False)
