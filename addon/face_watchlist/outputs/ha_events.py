"""Home Assistant Core events over its REST API: `face_watchlist_match` for automations.

Fired through homeassistant-api's AsyncClient (`POST /api/events/<type>`): inside the add-on
against the Supervisor's proxy (`http://supervisor/core/api`, SUPERVISOR_TOKEN), elsewhere
against a URL with a long-lived token. The event carries the same fields as the integration's
bus event, and is not fired while the integration is set up (it fires its own, with device ids:
two would double every notification). An unreachable HA is reported and retried; the decisions
never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPMethod
from typing import Any

from homeassistant_api import AsyncClient
from homeassistant_api.errors import MalformedInputError, MethodNotAllowedError, UnauthorizedError

from face_watchlist.outputs.base import Bus
from face_watchlist.outputs.discovery import INTEGRATION_TOPIC
from face_watchlist.outputs.retry import Backoff, Jobs

LOG = logging.getLogger(__name__)
EVENT_MATCH = "face_watchlist_match"
FIELDS = (
    "camera",
    "event_id",
    "result",
    "person",
    "person_id",
    "list",
    "list_kind",
    "review_state",
    "decision_id",
    "score",
    "margin",
    "false_match_rate",
    "timestamp",
)


@dataclass(frozen=True)
class _Fire:
    event_type: str
    data: dict[str, Any]
    queued: float  # loop time, for the latency figure


def event_data(kind: str, data: dict[str, Any], evidence_base: str | None) -> dict[str, Any] | None:
    """The event's data for a decision or a review (None: not worth an event)."""
    if kind == "decision" and data.get("result") == "match":
        event_type = "review_needed" if data.get("review_state") == "pending_review" else "match"
    elif kind == "review" and data.get("review_state") in ("confirmed", "rejected"):
        event_type = "match" if data["review_state"] == "confirmed" else "rejected"
    else:
        return None
    out = {key: data.get(key) for key in FIELDS if key in data}
    out["event_type"] = event_type
    if kind == "review":
        out["reviewer"] = data.get("reviewer")
    decision_id = data.get("decision_id")
    base = (evidence_base or "").rstrip("/")
    if isinstance(decision_id, int):
        out["evidence_url"] = f"{base}/api/decisions/{decision_id}/face.jpg"
        out["snapshot_url"] = f"{base}/api/decisions/{decision_id}/snapshot.jpg"
    return out


def api_url(url: str) -> str:
    """HA's base URL (or the Supervisor's `/core`) -> its REST API root."""
    url = url.rstrip("/")
    return url if url.endswith("/api") else f"{url}/api"


class HaEvents:
    name = "ha_events"
    topics: tuple[str, ...] = (INTEGRATION_TOPIC,)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        evidence_base_url: str | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url, self._token = api_url(url), token
        self.evidence_base = evidence_base_url
        self.timeout_s = timeout_s
        self.jobs: Jobs[_Fire] = Jobs("Home Assistant events", backoff or Backoff())
        self.stats = self.jobs.stats
        self.integration = False
        self.latencies_ms: list[float] = []  # queued -> HA answered, the last 100

    def __repr__(self) -> str:  # never the token
        return f"HaEvents({self.url!r})"

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        fired = event_data(kind, data, self.evidence_base)
        if fired is None:
            return
        if self.integration:
            self.stats["skipped_integration"] += 1
            return
        self.jobs.put(_Fire(EVENT_MATCH, fired, asyncio.get_running_loop().time()))

    def message(self, topic: str, payload: bytes) -> None:
        if topic == INTEGRATION_TOPIC:
            self.integration = bool(payload.strip())

    async def connected(self, bus: Bus) -> None:
        return None

    async def run(self, bus: Bus) -> None:
        client = AsyncClient(self.url, self._token)
        # the library's default is niquests' (none): a hung HA must not hold the queue for ever
        client.global_request_kwargs["timeout"] = self.timeout_s
        loop = asyncio.get_running_loop()

        async def fire(job: _Fire) -> None:
            # fire_event(event_type, **data) cannot carry a data field named event_type (the
            # integration's bus event has one): the same POST through the client's request()
            await client.request(f"events/{job.event_type}", method=HTTPMethod.POST, json=job.data)
            self.latencies_ms = [*self.latencies_ms[-99:], round((loop.time() - job.queued) * 1000, 1)]
            LOG.info("fired %s (%s) in Home Assistant", job.event_type, job.data.get("event_type"))

        try:
            # a wrong token or URL will not mend by waiting
            await self.jobs.run(fire, (UnauthorizedError, MethodNotAllowedError, MalformedInputError))
        finally:
            await client._session.close()  # what __aexit__ does (__aenter__ would need HA up)
