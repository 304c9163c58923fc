"""Decisions and matches, their evidence, the review actions and the live stream."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from aiohttp import web

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.web import audit
from face_watchlist.web.context import HUB_KEY, actor, service_of
from face_watchlist.web.errors import ApiError, not_found
from face_watchlist.web.schemas import REVIEW, page
from face_watchlist.web.spec import BODY, QUERY, Param, Response, Routes, ref

api = Routes()
ID = {"type": "integer", "minimum": 1}
STATES = ["pending_review", "alert", "confirmed", "rejected"]
JPEG = Response("JPEG", {"type": "string", "format": "binary"}, "image/jpeg")


def _records(request: web.Request) -> Any:
    records = getattr(service_of(request), "records", None)
    if records is None:
        raise ApiError(503, "unavailable", "decision records are not available in this service")
    return records


def _is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def decision_json(record: Any) -> dict[str, Any]:
    """A stored decision for clients: no embeddings, evidence as URLs relative to the API's base."""
    raw = dataclasses.asdict(record) if _is_instance(record) else dict(record)
    out = {k: v for k, v in raw.items() if not isinstance(v, bytes | np.ndarray) and "embedding" not in k}
    for key in [k for k in out if k.endswith("_file") or k.endswith("_path")]:
        out.pop(key)
    decision_id = out.get("id")
    has_evidence = out.get("result") == "match" and decision_id is not None
    out["evidence"] = (
        {
            "face": f"/api/decisions/{decision_id}/face.jpg",
            "snapshot": f"/api/decisions/{decision_id}/snapshot.jpg",
        }
        if has_evidence
        else None
    )
    return out


@api.route(
    "GET",
    "/api/decisions",
    "Decisions, newest first, filtered and paged",
    "decisions",
    params=(
        Param("camera", {"type": "string", "maxLength": 200}),
        Param("list", {"type": "string", "maxLength": 200}, description="list name"),
        Param("status", {"type": "string", "enum": STATES}, description="review state"),
        Param("result", {"type": "string", "enum": ["match", "unknown", "no_face"]}),
        Param("since", {"type": "number"}, description="UNIX time"),
        Param("until", {"type": "number"}, description="UNIX time"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, default=50),
        Param("offset", {"type": "integer", "minimum": 0}, default=0),
    ),
    responses={200: Response("a page of decisions", page(ref("Decision")))},
)
async def get_decisions(request: web.Request) -> web.Response:
    q = request[QUERY]
    items, total = _records(request).query(
        camera=q["camera"],
        list_name=q["list"],
        status=q["status"],
        result=q["result"],
        since=q["since"],
        until=q["until"],
        limit=q["limit"],
        offset=q["offset"],
    )
    return web.json_response({"items": [decision_json(r) for r in items], "total": total})


def _get(request: web.Request) -> Any:
    decision_id = request[QUERY]["decision_id"]
    try:
        return _records(request).get(decision_id)
    except (KeyError, LookupError, FaceWatchlistError):
        raise not_found(f"decision with id {decision_id}") from None


@api.route(
    "GET",
    "/api/decisions/{decision_id}",
    "One decision",
    "decisions",
    params=(Param("decision_id", ID, "path"),),
    responses={200: Response("the decision", ref("Decision"))},
)
async def get_decision(request: web.Request) -> web.Response:
    return web.json_response(decision_json(_get(request)))


async def _evidence(request: web.Request, kind: str) -> web.Response:
    record = _get(request)
    try:
        data = _records(request).evidence(record.id, kind)
    except (KeyError, LookupError, FileNotFoundError, FaceWatchlistError):
        raise not_found(f"{kind} evidence for decision {record.id}") from None
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@api.route(
    "GET",
    "/api/decisions/{decision_id}/face.jpg",
    "The probe face (a loose crop)",
    "decisions",
    params=(Param("decision_id", ID, "path"),),
    responses={200: JPEG},
)
async def get_face(request: web.Request) -> web.Response:
    return await _evidence(request, "face")


@api.route(
    "GET",
    "/api/decisions/{decision_id}/snapshot.jpg",
    "The snapshot with the face boxed",
    "decisions",
    params=(Param("decision_id", ID, "path"),),
    responses={200: JPEG},
)
async def get_snapshot(request: web.Request) -> web.Response:
    return await _evidence(request, "snapshot")


@api.route(
    "POST",
    "/api/decisions/{decision_id}/review",
    "Confirm or reject a match",
    "decisions",
    params=(Param("decision_id", ID, "path"),),
    body=REVIEW,
    responses={
        200: Response("the decision with its new review_state", ref("Decision")),
        409: Response("not a match"),
    },
)
async def review(request: web.Request) -> web.Response:
    record, body = _get(request), request[BODY]
    if getattr(record, "result", None) != "match":
        raise ApiError(409, "not_a_match", "only a match can be reviewed")
    service = service_of(request)
    reviewer = actor(request)
    add_template = bool(body.get("add_template", False))
    review_with = getattr(service, "review", None)  # the service also tells MQTT and open pages
    try:
        if review_with is not None:
            updated = await review_with(record.id, body["action"], reviewer, add_template=add_template)
        else:
            updated = _records(request).review(record.id, body["action"], reviewer, add_template=add_template)
    except FaceWatchlistError as err:
        raise ApiError(409, "conflict", str(err)) from None
    audit.record(
        request, f"decision.{body['action']}", f"decision:{record.id}", {"add_template": add_template}
    )
    return web.json_response(decision_json(updated))


@api.route(
    "GET",
    "/api/stream",
    "Server-Sent Events: `decision` and `review` as they happen",
    "decisions",
    responses={200: Response("an event stream", {"type": "string"}, "text/event-stream")},
)
async def stream(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB_KEY].stream(request)
