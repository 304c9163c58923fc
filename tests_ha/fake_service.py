"""A fake Face Watchlist service speaking the HTTP routes of docs/interfaces.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "s3cret-token"
INSTANCE_ID = "0f8e2c6a-instance"
FACE_JPEG = b"\xff\xd8\xff\xe0face\xff\xd9"
SNAPSHOT_JPEG = b"\xff\xd8\xff\xe0snapshot\xff\xd9"


def status_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instance_id": INSTANCE_ID,
        "version": "0.1.0",
        "pack": "opencv-zoo",
        "mqtt": "connected",
        "frigate": "up",
        "queue_depth": 0,
        "queue_size": 32,
        "tracked_objects": 0,
        "counters": {"decisions": 3},
        "cameras": ["front_door"],
        "pending_reviews": 1,
        "matches_today": 2,
        "people_per_list": {"registry": 40, "staff": 12},
    }
    body.update(overrides)
    return body


def decision(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "1718000000.123-abc",
        "camera": "front_door",
        "result": "match",
        "person": "Jane Doe",
        "person_id": 7,
        "list": "registry",
        "list_kind": "watch",
        "review_state": "pending_review",
        "decision_id": 42,
        "evidence": {"face": "/api/decisions/42/face.jpg", "snapshot": "/api/decisions/42/snapshot.jpg"},
        "score": 0.61,
        "margin": 0.22,
        "false_match_rate": 1e-05,
        "attempts": 2,
        "faces_seen": 2,
        "final": False,
        "timing_ms": {"fetch_ms": 8.1, "match_ms": 40.2, "total_ms": 52.0},
        "timestamp": 1718000001.5,
    }
    body.update(overrides)
    if body["result"] != "match":
        for key in ("person", "person_id", "list", "list_kind", "decision_id", "evidence", "review_state"):
            body[key] = None
    return body


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@dataclass
class FakeService:
    """State and knobs of the fake: tests change `health`, `status`, `fail` and read `calls`."""

    health: dict[str, Any] = field(
        default_factory=lambda: {"status": "ok", "service": "face_watchlist", "version": "0.1.0"}
    )
    status: dict[str, Any] = field(default_factory=status_body)
    people: dict[int, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, web.Response] = field(default_factory=dict)  # route name -> forced answer
    calls: list[tuple[str, Any]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/health", self._health, name="health")
        app.router.add_get("/api/status", self._status, name="status")
        app.router.add_post("/api/people", self._create_person, name="create_person")
        app.router.add_delete("/api/people/{id}", self._delete_person, name="delete_person")
        app.router.add_post("/api/people/{id}/photos", self._photo, name="photo")
        app.router.add_post("/api/people/{id}/photos/from_event", self._photo_from_event, name="from_event")
        app.router.add_get("/api/decisions/{id}/{kind}.jpg", self._evidence, name="evidence")
        app.router.add_post("/api/decisions/{id}/review", self._review, name="review")
        app.router.add_post("/api/imports", self._import, name="import_registry")
        app.router.add_post("/api/purge", self._purge, name="purge")
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        name = request.match_info.route.name
        if name != "health" and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(401, "unauthorized", "bad token")
        if name in self.fail:
            return self.fail[name]
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(self.health, status=200 if self.health.get("status") == "ok" else 503)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status)

    async def _create_person(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("create_person", body))
        if body["list"] not in self.status["people_per_list"]:
            return error(404, "no_such_list", f"no list {body['list']}")
        person_id = max(self.people, default=99) + 1
        person = {
            "id": person_id,
            "display_name": body["display_name"],
            "external_id": body.get("external_id"),
            "lists": [body["list"]],
            "photos": 0,
        }
        self.people[person_id] = person
        return web.json_response(person, status=201)

    async def _delete_person(self, request: web.Request) -> web.Response:
        person_id = int(request.match_info["id"])
        self.calls.append(("delete_person", person_id))
        if self.people.pop(person_id, None) is None:
            return error(404, "no_such_person", f"no person {person_id}")
        return web.Response(status=204)

    def _person(self, request: web.Request) -> dict[str, Any] | None:
        return self.people.get(int(request.match_info["id"]))

    async def _photo(self, request: web.Request) -> web.Response:
        person = self._person(request)
        form = await request.post()
        photo = form.get("photo")
        data = photo.file.read() if isinstance(photo, web.FileField) else b""
        self.calls.append(
            (
                "photo",
                {
                    "person": request.match_info["id"],
                    "bytes": data,
                    "type": getattr(photo, "content_type", None),
                },
            )
        )
        if person is None:
            return error(404, "no_such_person", "no such person")
        if not data.startswith(b"\xff\xd8") and not data.startswith(b"\x89PNG"):
            return error(422, "no_face", "no face found in the photo")
        person["photos"] += 1
        return web.json_response({"photo_id": person["photos"], "quality": 0.9}, status=201)

    async def _photo_from_event(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("from_event", body))
        if self._person(request) is None:
            return error(404, "no_such_person", "no such person")
        if body["event_id"] == "gone":
            return error(404, "no_such_event", "Frigate has no such event")
        return web.json_response({"photo_id": 1, "quality": 0.8}, status=201)

    async def _evidence(self, request: web.Request) -> web.Response:
        self.calls.append(("evidence", dict(request.match_info)))
        if request.match_info["id"] != "42":
            return error(404, "no_such_decision", "no such decision")
        body = FACE_JPEG if request.match_info["kind"] == "face" else SNAPSHOT_JPEG
        return web.Response(body=body, content_type="image/jpeg")

    async def _review(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("review", {"id": int(request.match_info["id"]), **body}))
        if request.match_info["id"] != "42":
            return error(404, "no_such_decision", "no such decision")
        state = "confirmed" if body["action"] == "confirm" else "rejected"
        answer = {**decision(), "review_state": state}
        if body["action"] == "confirm" and body.get("add_template"):
            answer["template"] = {"added": True, "photo_id": 3}
        return web.json_response(answer)

    async def _import(self, request: web.Request) -> web.Response:
        form = await request.post()
        files = {k: v.file.read() for k, v in form.items() if isinstance(v, web.FileField)}
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        self.calls.append(("import", {**fields, **files}))
        if fields.get("list") not in self.status["people_per_list"]:
            return error(404, "not_found", f"no list named {fields.get('list')!r}")
        job = {
            "id": "0123456789abcdef",
            "list": fields["list"],
            "state": "running",
            "total": 0,
            "done": 0,
            "replace": fields.get("replace") == "true",
            "counts": {},
            "errors": [],
        }
        return web.json_response(job, status=202)

    async def _purge(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("purge", body))
        return web.json_response({"dry_run": body["dry_run"], "removed": {"decisions": 5, "evidence": 4}})


def payload(body: dict[str, Any]) -> str:
    return json.dumps(body)
