"""Decisions and matches, their evidence, the review actions and the live stream."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from face_watchlist.gallery.records import DecisionRecord, EvidenceKind, Records
from face_watchlist.gallery.store import StoreError
from face_watchlist.web.context import HUB_KEY, actor, service_of
from face_watchlist.web.enrolment import WebEnroller
from face_watchlist.web.errors import ApiError, not_found
from face_watchlist.web.schemas import REVIEW, page
from face_watchlist.web.spec import BODY, QUERY, Param, Response, Routes, ref

api = Routes()
ID = {"type": "integer", "minimum": 1}
STATES = ["pending_review", "alert", "confirmed", "rejected"]
JPEG = Response("JPEG", {"type": "string", "format": "binary"}, "image/jpeg")
DECISION_ID = (Param("decision_id", ID, "path"),)


def _records(request: web.Request) -> Records:
    return service_of(request).records


def decision_json(record: DecisionRecord) -> dict[str, Any]:
    """A stored decision for clients, with its evidence as API paths (as on MQTT)."""
    out = asdict(record)
    out["decision_id"] = record.id
    out["timestamp"] = record.time
    out["evidence"] = (
        {
            "face": f"/api/decisions/{record.id}/face.jpg",
            "snapshot": f"/api/decisions/{record.id}/snapshot.jpg",
        }
        if record.has_evidence
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
        Param("person_id", ID),
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
        person_id=q["person_id"],
        since=q["since"],
        until=q["until"],
        limit=q["limit"],
        offset=q["offset"],
    )
    return web.json_response({"items": [decision_json(r) for r in items], "total": total})


def _get(request: web.Request) -> DecisionRecord:
    decision_id = request[QUERY]["decision_id"]
    try:
        return _records(request).get(decision_id)
    except StoreError:
        raise not_found(f"decision with id {decision_id}") from None


@api.route(
    "GET",
    "/api/decisions/{decision_id}",
    "One decision",
    "decisions",
    params=DECISION_ID,
    responses={200: Response("the decision", ref("Decision"))},
)
async def get_decision(request: web.Request) -> web.Response:
    return web.json_response(decision_json(_get(request)))


async def _evidence(request: web.Request, kind: EvidenceKind) -> web.Response:
    record = _get(request)
    try:
        data = _records(request).evidence(record.id, kind)
    except StoreError as err:
        raise ApiError(404, "not_found", str(err)) from None
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@api.route(
    "GET",
    "/api/decisions/{decision_id}/face.jpg",
    "The probe face (a loose crop)",
    "decisions",
    params=DECISION_ID,
    responses={200: JPEG},
)
async def get_face(request: web.Request) -> web.Response:
    return await _evidence(request, "face")


@api.route(
    "GET",
    "/api/decisions/{decision_id}/snapshot.jpg",
    "The snapshot with the face boxed",
    "decisions",
    params=DECISION_ID,
    responses={200: JPEG},
)
async def get_snapshot(request: web.Request) -> web.Response:
    return await _evidence(request, "snapshot")


@api.route(
    "POST",
    "/api/decisions/{decision_id}/review",
    "Confirm or reject a match (a rejection stops this face matching this person again; a "
    "confirmation with add_template enrols the probe face as a new photo of the person)",
    "decisions",
    params=DECISION_ID,
    body=REVIEW,
    responses={
        200: Response("the decision with its new review_state (and `template` when asked)", ref("Decision")),
        409: Response("not a match, or already reviewed"),
    },
)
async def review(request: web.Request) -> web.Response:
    record, body, service = _get(request), request[BODY], service_of(request)
    action, add_template = body["action"], bool(body.get("add_template", False))
    try:
        updated = await service.review(record.id, action, actor(request))
    except StoreError as err:
        raise ApiError(409, "conflict", str(err)) from None
    out = decision_json(updated)
    if action == "confirm" and add_template:
        out["template"] = await _add_template(request, updated)
    return web.json_response(out)


async def _add_template(request: web.Request, record: DecisionRecord) -> dict[str, Any]:
    """The confirmed face becomes an enrolment photo: its loose crop goes through the same
    enrolment checks as an upload (a face too poor to enrol is reported, the review stands)."""
    service, store = service_of(request), service_of(request).gallery.store
    try:
        crop = service.records.evidence(record.id, "face")
        person = store.get_person(record.person_id or 0)
        lists = store.person_lists(person.id)
        if not lists:
            raise ApiError(409, "conflict", f"{person.display_name} is on no list")
        done = await WebEnroller(service, "review", actor(request)).enrol_bytes(
            person, lists[0], crop, f"decision:{record.id}"
        )
    except (ApiError, StoreError) as err:
        return {"added": False, "reason": err.message if isinstance(err, ApiError) else str(err)}
    return {"added": True, "photo_id": done.photo_id, "advice": done.advice}


@api.route(
    "GET",
    "/api/stream",
    "Server-Sent Events: `decision` and `review` as they happen",
    "decisions",
    responses={200: Response("an event stream", {"type": "string"}, "text/event-stream")},
)
async def stream(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB_KEY].stream(request)
