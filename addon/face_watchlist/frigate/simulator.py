"""A Frigate stand-in for tests, the demo and benchmarks: its HTTP API and its MQTT messages.

Frigate can't run here (no Docker), so this speaks the parts of its API the service uses, with
the behaviours that bite clients kept faithful (see /work/shared/reference/FRIGATE.md and
Frigate's `frigate/api/{auth,event,media}.py`):

- port 8971 (`auth=True`): every route but `/api/login` and `/api/version` needs a JWT, as a
  `frigate_token` cookie or `Authorization: Bearer`; login answers with the cookie only (an empty
  body); tokens expire; `sub_label` needs the admin role; a POST carrying `Origin` without
  `X-CSRF-TOKEN` is refused. Port 5000 (`auth=False`): no auth, every caller is admin.
- snapshots honour `crop` (Frigate's square region, 1.1x the box, at least 300 px), `height`,
  `quality`, `bbox` and `timestamp`; the obsolete `h` is ignored. From 0.18 what the query leaves
  out comes from the camera's snapshot config (which draws the box); before 0.18 a live event's
  snapshot has no box unless asked, and an *ended* event serves its stored snapshot, rendered
  with the camera's settings, box included: the query is ignored (`version` picks the behaviour).
- `GET /api/events/{id}` keeps the box in `data`, relative `[x, y, w, h]`; the top-level `box`
  is a dead column (null), and `sub_label` is the bare name (MQTT has `[name, score]`).
- validation errors are FastAPI's 422 `{"detail": [...]}`.

Frames are composed, deterministic: the event's photo fitted (aspect kept) into its person box on
a grey frame of the camera's detect size; a photo of exactly that size is the frame itself.
Faults (500, delay, truncated body, connection reset) can be injected per route or globally.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from aiohttp import web

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in detect-frame pixels
Frame = np.ndarray[Any, np.dtype[np.uint8]]
EventKind = Literal["new", "update", "end"]
Availability = Literal["online", "stopped", "offline"]
FaultKind = Literal["error", "delay", "truncate", "reset"]
RouteName = Literal["login", "version", "config", "event", "snapshot", "latest", "sub_label"]
ROUTES: tuple[RouteName, ...] = ("login", "version", "config", "event", "snapshot", "latest", "sub_label")

COOKIE = "frigate_token"
BACKGROUND = (90, 90, 90)  # BGR grey: plain, so a detector finds only the pasted photo's faces
BOX_COLOUR = (0, 255, 0)
_PUBLIC_ROUTES = frozenset({"login", "version"})  # nginx's `auth_request off` locations
CALLER = web.RequestKey[tuple[str, str]]("caller")  # (user, role), as nginx passes them on


@dataclass(frozen=True)
class SnapshotSettings:
    """A camera's `snapshots:` config: the defaults of the snapshot query (Frigate's defaults)."""

    bounding_box: bool = True
    timestamp: bool = False
    crop: bool = False
    height: int | None = None
    quality: int = 70


@dataclass(frozen=True)
class Camera:
    name: str
    width: int = 1280  # detect resolution: boxes and frames are in these pixels
    height: int = 720
    zones: tuple[str, ...] = ()
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)


@dataclass
class SimEvent:
    """One tracked object; the HTTP side serves it and the MQTT helpers describe it.

    Mutable on purpose: `publish_lifecycle` moves the snapshot of the very object the server
    holds, so a client fetching after an `update` message gets the new picture.
    """

    id: str
    camera: str
    photo: bytes  # JPEG (any format cv2 decodes) pasted into the frame at `box`
    box: Box
    frame_time: float  # of the current best snapshot (`snapshot.frame_time`)
    start_time: float
    frame_size: tuple[int, int] = (1280, 720)  # the camera's detect width, height
    label: str = "person"
    score: float = 0.86
    top_score: float = 0.87
    end_time: float | None = None
    zones: tuple[str, ...] = ()
    sub_label: str | None = None
    sub_label_score: float | None = None
    sub_label_written: bool = False  # after any write MQTT says [name, score], even [null, null]
    has_snapshot: bool = True
    has_clip: bool = True
    stationary: bool = False
    false_positive: bool = False
    face_box: Box | None = None  # a Frigate+ model's "face" attribute, when it found one
    face_score: float = 0.8
    _patch: tuple[tuple[bytes, Box, tuple[int, int]], tuple[int, int, Frame]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def move_snapshot(
        self, photo: bytes | None = None, box: Sequence[float] | None = None, frame_time: float | None = None
    ) -> None:
        """A better snapshot: new picture and/or box, and a later frame_time (default +1 s)."""
        if photo is not None:
            _decode(photo)
            self.photo = photo
        if box is not None:
            self.box = _check_box(box, self.frame_size)
        self.frame_time = self.frame_time + 1.0 if frame_time is None else frame_time

    def patch(self) -> tuple[int, int, Frame]:
        """(x, y, pixels) of the photo fitted into the box; cached while photo and box stay."""
        key = (self.photo, self.box, self.frame_size)
        if self._patch is None or self._patch[0] != key:
            self._patch = (key, _fit(_decode(self.photo), self.box, self.frame_size))
        return self._patch[1]

    def frame(self) -> Frame:
        """The detect-resolution frame of the current snapshot."""
        return _compose(self.frame_size, [self.patch()])


@dataclass(frozen=True)
class SubLabelWrite:
    event_id: str
    sub_label: str | None  # None: cleared with ""
    score: float | None
    camera: str | None
    user: str


@dataclass
class Fault:
    kind: FaultKind
    delay: float = 0.0
    remaining: int | None = None  # requests left to spoil; None: until cleared


@dataclass(frozen=True)
class SnapshotUpdate:
    """One `update` of `publish_lifecycle`; `new_snapshot=False` is a zone/position update only."""

    photo: bytes | None = None
    box: Sequence[float] | None = None
    frame_time: float | None = None
    new_snapshot: bool = True


class Publisher(Protocol):
    """What `publish_lifecycle` needs of an `aiomqtt.Client`."""

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


# --- images ----------------------------------------------------------------------------------


def _decode(photo: bytes) -> Frame:
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("photo is not a decodable image")
    return np.asarray(image, dtype=np.uint8)


def _encode(image: Frame, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(data.tobytes())


def _check_box(box: Sequence[float], size: tuple[int, int]) -> Box:
    if len(box) != 4:
        raise ValueError("box must be [x1, y1, x2, y2]")
    x1, y1, x2, y2 = (round(v) for v in box)
    width, height = size
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"box {list(box)} is not inside the {width}x{height} frame")
    return x1, y1, x2, y2


def _default_box(photo: Frame, size: tuple[int, int]) -> Box:
    """A centred person box of the photo's shape, 80 % of the frame at most."""
    width, height = size
    ph, pw = photo.shape[:2]
    if (pw, ph) == size:
        return 0, 0, width, height
    scale = min(0.8 * height / ph, 0.8 * width / pw)
    bw, bh = max(1, round(pw * scale)), max(1, round(ph * scale))
    x1, y1 = (width - bw) // 2, (height - bh) // 2
    return x1, y1, x1 + bw, y1 + bh


def _fit(photo: Frame, box: Box, size: tuple[int, int]) -> tuple[int, int, Frame]:
    ph, pw = photo.shape[:2]
    if (pw, ph) == size:  # a full frame already
        return 0, 0, photo
    x1, y1, x2, y2 = box
    scale = min((x2 - x1) / pw, (y2 - y1) / ph)
    w, h = max(1, round(pw * scale)), max(1, round(ph * scale))
    resized = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return x1 + (x2 - x1 - w) // 2, y1 + (y2 - y1 - h) // 2, np.asarray(resized, dtype=np.uint8)


def _compose(size: tuple[int, int], patches: Sequence[tuple[int, int, Frame]]) -> Frame:
    width, height = size
    frame: Frame = np.empty((height, width, 3), np.uint8)
    frame[:] = BACKGROUND
    for x, y, pixels in patches:
        h, w = pixels.shape[:2]
        frame[y : y + h, x : x + w] = pixels
    return frame


def calculate_region(
    frame_size: tuple[int, int], box: Box, model_size: int, multiplier: float
) -> tuple[int, int, int, int]:
    """Frigate's `calculate_region`: a square around the box, at least model_size, in frame."""
    width, height = frame_size
    x1, y1, x2, y2 = box
    size = max(model_size, int((max(x2 - x1, y2 - y1) * multiplier) // 4 * 4))
    x = min(max(0, int((x2 - x1) / 2 + x1 - size / 2)), max(0, width - size))
    y = min(max(0, int((y2 - y1) / 2 + y1 - size / 2)), max(0, height - size))
    return x, y, x + size, y + size


def render_snapshot(
    event: SimEvent, *, crop: bool, height: int | None, quality: int, bbox: bool, timestamp: bool
) -> bytes:
    """Frigate's `get_snapshot_bytes`: draw, crop, resize, stamp, encode, in that order."""
    frame = event.frame()
    if bbox:
        x1, y1, x2, y2 = event.box
        cv2.rectangle(frame, (x1, y1), (x2, y2), BOX_COLOUR, 2)
        cv2.putText(frame, f"{event.label}: {event.score:.0%}", (x1, max(12, y1 - 4)), 0, 0.5, BOX_COLOUR, 1)
    if crop:
        rx1, ry1, rx2, ry2 = calculate_region(event.frame_size, event.box, 300, 1.1)
        frame = frame[ry1:ry2, rx1:rx2]
    if height:
        width = int(height * frame.shape[1] / frame.shape[0])
        frame = np.asarray(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    if timestamp:
        stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.localtime(event.frame_time))
        cv2.putText(frame, stamp, (10, 30), 0, 0.8, (255, 255, 255), 2)
    return _encode(np.ascontiguousarray(frame), quality)


# --- the HTTP API ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _detail(kind: str, loc: Sequence[str | int], msg: str, value: Any = None) -> web.Response:
    """FastAPI's answer to a request that fails validation."""
    return web.json_response(
        {"detail": [{"type": kind, "loc": list(loc), "msg": msg, "input": value}]}, status=422
    )


def _failure(message: str, status: int) -> web.Response:
    return web.json_response({"success": False, "message": message}, status=status)


def _query_int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(
                {"detail": [{"type": "int_parsing", "loc": ["query", name], "msg": "not an integer"}]}
            ),
            content_type="application/json",
        ) from None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("-", maxsplit=1)[0].split(".")[:2] if p.isdigit())


class FrigateSimulator:
    """Frigate's HTTP API over in-memory state; run it in-process with `start()` / `stop()`."""

    def __init__(
        self,
        cameras: Sequence[Camera] = (Camera("front_door", zones=("front_entrance",)),),
        *,
        auth: bool = True,
        user: str = "admin",
        password: str = "frigate-sim-password",
        extra_users: Mapping[str, tuple[str, str]] | None = None,  # name -> (password, role)
        token_ttl: float = 300.0,
        face_recognition: bool = False,
        version: str = "0.17.2",
        topic_prefix: str = "frigate",
        clock: Callable[[], float] = time.time,
        render_cache: int = 0,
    ) -> None:
        self.cameras: dict[str, Camera] = {c.name: c for c in cameras}
        # benchmarks: serve repeated pictures without re-encoding them, as a real Frigate on its
        # own machine costs the service nothing for rendering (entries, 0: off)
        self.render_cache_size = render_cache
        self._renders: collections.OrderedDict[tuple[object, ...], bytes] = collections.OrderedDict()
        self.auth = auth
        self.users: dict[str, tuple[str, str]] = {user: (password, "admin"), **(extra_users or {})}
        self.token_ttl = token_ttl
        self.face_recognition = face_recognition
        self.version = version
        self.topic_prefix = topic_prefix
        self.clock = clock
        self.events: dict[str, SimEvent] = {}
        self.latest_override: dict[str, bytes] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.sub_label_writes: list[SubLabelWrite] = []
        self.faults: dict[str | None, Fault] = {}  # route name, or None for every route
        self._secret = secrets.token_bytes(32)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- state ---

    def add_camera(self, camera: Camera) -> None:
        self.cameras[camera.name] = camera

    def add_event(
        self,
        event_id: str,
        camera: str,
        photo: bytes,
        box: Sequence[float] | None = None,
        *,
        frame_time: float | None = None,
        start_time: float | None = None,
        zones: Sequence[str] | None = None,
        **fields: Any,
    ) -> SimEvent:
        """Track a new object; `box` defaults to a centred box of the photo's shape.

        `fields` are further `SimEvent` fields (score, has_clip, face_box, sub_label, ...).
        Zones default to every zone of the camera, so zone filters let the object through.
        """
        cam = self.cameras[camera]  # KeyError: Frigate only has events of configured cameras
        size = (cam.width, cam.height)
        decoded = _decode(photo)
        start = self.clock() if start_time is None else start_time
        event = SimEvent(
            id=event_id,
            camera=camera,
            photo=photo,
            box=_check_box(box, size) if box is not None else _default_box(decoded, size),
            frame_time=start + 0.4 if frame_time is None else frame_time,
            start_time=start,
            frame_size=size,
            zones=tuple(cam.zones if zones is None else zones),
            **fields,
        )
        self.events[event_id] = event
        return event

    def update_snapshot(
        self,
        event_id: str,
        photo: bytes | None = None,
        box: Sequence[float] | None = None,
        frame_time: float | None = None,
    ) -> SimEvent:
        """Frigate found a better snapshot: what the snapshot route serves from now on."""
        event = self.events[event_id]
        event.move_snapshot(photo, box, frame_time)
        return event

    def end_event(self, event_id: str, end_time: float | None = None) -> SimEvent:
        event = self.events[event_id]
        event.end_time = event.frame_time + 1.0 if end_time is None else end_time
        return event

    def set_latest(self, camera: str, photo: bytes | None) -> None:
        """Pin the camera's latest frame to this picture (None: compose it from the events)."""
        if photo is None:
            self.latest_override.pop(camera, None)
        else:
            _decode(photo)
            self.latest_override[camera] = photo

    def latest_frame(self, camera: str) -> Frame:
        """The camera's current frame: every in-progress event's photo at its box."""
        cam = self.cameras[camera]
        size = (cam.width, cam.height)
        pinned = self.latest_override.get(camera)
        if pinned is not None:
            image = _decode(pinned)
            if (image.shape[1], image.shape[0]) != size:
                image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
            return image
        active = [e for e in self.events.values() if e.camera == camera and e.end_time is None]
        return _compose(size, [e.patch() for e in active])

    def inject(
        self, kind: FaultKind, route: RouteName | None = None, *, delay: float = 5.0, times: int | None = None
    ) -> None:
        """Spoil the next `times` requests (None: all until cleared) of a route, or of every route.

        error: HTTP 500; delay: answer after `delay` seconds; truncate: the body cut in half
        (with a matching Content-Length, so the client reads a complete but broken JPEG);
        reset: the connection is dropped with a TCP RST, no answer. A route's own fault wins.
        """
        self.faults[route] = Fault(kind, delay, times)

    def clear_faults(self, route: RouteName | None = None) -> None:
        """Clear one route's fault, or (None) every fault."""
        if route is None:
            self.faults.clear()
        else:
            self.faults.pop(route, None)

    # --- tokens ---

    def issue_token(self, user: str, ttl: float | None = None) -> str:
        """A signed HS256 JWT like Frigate's (sub, role, exp, iat)."""
        now = self.clock()
        claims = {
            "sub": user,
            "role": self.users[user][1],
            "exp": now + (self.token_ttl if ttl is None else ttl),
            "iat": int(now),
        }
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def _verify(self, token: str) -> tuple[str, str] | None:
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims = json.loads(_unb64(body))
            exp = float(claims["exp"])
            user = str(claims["sub"])
        except (ValueError, KeyError, TypeError):
            return None
        if exp <= self.clock() or user not in self.users:
            return None
        return user, str(claims.get("role", "viewer"))

    def _caller(self, request: web.Request) -> tuple[str, str] | None:
        """(user, role) as nginx's auth_request would pass them on, or None."""
        if not self.auth:
            return "anonymous", "admin"
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):  # like Frigate: a header wins over the cookie
            return self._verify(header.removeprefix("Bearer "))
        cookie = request.cookies.get(COOKIE)
        return self._verify(cookie) if cookie else None

    # --- the app ---

    def make_app(self) -> web.Application:
        """A fresh aiohttp app over this state (for `start()`, `aiohttp_client` or `run_app`)."""
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/api/login", self._login, name="login")
        r.add_get("/api/version", self._version, name="version")
        r.add_get("/api/config", self._config, name="config")
        r.add_get("/api/events/{event_id}/snapshot.jpg", self._snapshot, name="snapshot")
        r.add_post("/api/events/{event_id}/sub_label", self._sub_label, name="sub_label")
        r.add_get("/api/events/{event_id}", self._event, name="event")
        r.add_get("/api/{camera}/latest.jpg", self._latest, name="latest")
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port); returns the base URL, e.g. http://127.0.0.1:40123."""
        if self._runner is not None:
            return self.base_url
        # handler_cancellation: a client that gave up on a delayed answer frees its handler
        runner = web.AppRunner(
            self.make_app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FrigateSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _take_fault(self, route: str) -> Fault | None:
        key: str | None = route if route in self.faults else None
        fault = self.faults.get(key)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self.faults[key]
        return fault

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name or "unmatched"
        self.requests[route] += 1
        fault = self._take_fault(route)
        if fault is not None:
            if fault.kind == "error":
                return _failure("Simulated internal error", 500)
            if fault.kind == "reset":
                _reset(request)
                return web.Response(status=500)  # never reaches the client
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
        if request.method == "POST" and "Origin" in request.headers and "X-CSRF-TOKEN" not in request.headers:
            return _failure("Missing CSRF header", 401)
        if route not in _PUBLIC_ROUTES:  # nginx asks /api/auth first, even for unknown paths
            caller = self._caller(request)
            if caller is None:
                return web.Response(status=401, text="401 Authorization Required")
            request[CALLER] = caller
        response = await handler(request)
        if fault is not None and fault.kind == "truncate" and isinstance(response, web.Response):
            body = response.body
            if isinstance(body, bytes | bytearray):
                response.body = bytes(body[: len(body) // 2])
        return response

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _detail("json_invalid", ["body"], "JSON decode error")
        if not isinstance(body, dict):
            return _detail("model_attributes_type", ["body"], "Input should be an object", body)
        for name in ("user", "password"):
            if not isinstance(body.get(name), str):
                return _detail(
                    "string_type", ["body", name], "Input should be a valid string", body.get(name)
                )
        known = self.users.get(body["user"])
        if known is None or not hmac.compare_digest(known[0].encode(), body["password"].encode()):
            return web.json_response({"message": "Login failed"}, status=401)
        response = web.Response(status=200)  # Frigate sends the token in the cookie only
        response.set_cookie(
            COOKIE, self.issue_token(body["user"]), httponly=True, max_age=int(self.token_ttl)
        )
        return response

    async def _version(self, request: web.Request) -> web.Response:
        return web.Response(text=self.version)

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config())

    def config(self) -> dict[str, Any]:
        """The parts of `GET /api/config` a client reads, shaped like Frigate's."""
        cameras: dict[str, Any] = {}
        for cam in self.cameras.values():
            polygon = f"0,0,{cam.width},0,{cam.width},{cam.height},0,{cam.height}"
            s = cam.snapshots
            cameras[cam.name] = {
                "name": cam.name,
                "enabled": True,
                "detect": {"enabled": True, "width": cam.width, "height": cam.height, "fps": 5},
                "zones": {
                    z: {"coordinates": polygon, "objects": [], "inertia": 3, "loitering_time": 0}
                    for z in cam.zones
                },
                "objects": {"track": ["person"]},
                "snapshots": {
                    "enabled": True,
                    "bounding_box": s.bounding_box,
                    "timestamp": s.timestamp,
                    "crop": s.crop,
                    "height": s.height,
                    "quality": s.quality,
                },
                "record": {"enabled": True},
                "face_recognition": {"enabled": self.face_recognition, "min_area": 500},
            }
        return {
            "version": self.version,
            "cameras": cameras,
            "face_recognition": {"enabled": self.face_recognition, "model_size": "small"},
            "mqtt": {"enabled": True, "topic_prefix": self.topic_prefix},
            "auth": {"enabled": True, "session_length": int(self.token_ttl), "cookie_name": COOKIE},
        }

    async def _event(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["event_id"])
        if event is None:
            return web.json_response("Event not found", status=404)
        return web.json_response(event_record(event))

    async def _snapshot(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["event_id"])
        if event is None:
            return _failure("Event not found", 404)
        settings = self.cameras[event.camera].snapshots
        modern = _version_tuple(self.version) >= (0, 18)
        if event.end_time is not None and not event.has_snapshot:
            return _failure("Snapshot not available", 404)
        crop, height, quality, bbox, stamp = (
            _query_int(request, n) for n in ("crop", "height", "quality", "bbox", "timestamp")
        )
        if event.end_time is not None and not modern:
            # the file written at the end with the camera's settings; the query is not read
            crop, height, quality = int(settings.crop), settings.height, settings.quality
            bbox, stamp = int(settings.bounding_box), int(settings.timestamp)
        elif modern:  # the query over the camera's settings
            crop = int(settings.crop) if crop is None else crop
            height = settings.height if height is None else height
            quality = settings.quality if quality is None else quality
            bbox = int(settings.bounding_box) if bbox is None else bbox
            stamp = int(settings.timestamp) if stamp is None else stamp
        if height is not None and height < 0:
            return _failure("Invalid height", 400)
        stamped = event.frame_time if stamp else None
        key = (event.photo, event.box, event.frame_size, crop, height, quality, bbox, stamped)
        data = self._renders.get(key) if self.render_cache_size else None
        if data is None:
            data = await asyncio.to_thread(
                render_snapshot,
                event,
                crop=bool(crop),
                height=height,
                quality=_quality(quality),
                bbox=bool(bbox),
                timestamp=bool(stamp),
            )
            if self.render_cache_size:
                self._renders[key] = data
                while len(self._renders) > self.render_cache_size:
                    self._renders.popitem(last=False)
        headers = {"Cache-Control": "no-store" if event.end_time is None else "private, max-age=31536000"}
        if modern:
            headers["X-Frame-Time"] = str(event.frame_time)
        return web.Response(body=data, content_type="image/jpeg", headers=headers)

    async def _latest(self, request: web.Request) -> web.Response:
        camera = request.match_info["camera"]
        if camera not in self.cameras:
            return _failure("Camera not found", 404)
        height = _query_int(request, "height")
        quality = _quality(_query_int(request, "quality"))
        if height is not None and height < 1:
            return web.json_response(f"Invalid height / width requested :: {height}", status=400)

        def render() -> bytes:
            frame = self.latest_frame(camera)
            if height is not None:
                width = int(height * frame.shape[1] / frame.shape[0])
                frame = np.asarray(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
            return _encode(frame, quality)

        data = await asyncio.to_thread(render)
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _sub_label(self, request: web.Request) -> web.Response:
        user, role = request.get(CALLER, ("anonymous", "admin"))
        if role != "admin":
            return web.json_response({"detail": f"Role {role} not authorized. Required: admin"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            return _detail("json_invalid", ["body"], "JSON decode error")
        problem = _sub_label_problem(body)
        if problem is not None:
            return problem
        label: str = body["subLabel"]
        camera: str | None = body.get("camera")
        score = _as_float(body.get("subLabelScore"))
        event_id = request.match_info["event_id"]
        event = self.events.get(event_id)
        if event is None:
            return _failure(f"Event {event_id} not found.", 404)
        name = label or None
        score = score if name is not None else None
        event.sub_label, event.sub_label_score, event.sub_label_written = name, score, True
        self.sub_label_writes.append(SubLabelWrite(event_id, name, score, camera, user))
        shown = name if name is not None else "None"
        return web.json_response({"success": True, "message": f"Event {event_id} sub label set to {shown}"})


def _as_float(value: Any) -> float | None:
    """pydantic's lax float: numbers and numeric strings, not booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _sub_label_problem(body: Any) -> web.Response | None:
    """The 422 FastAPI gives for a body that is not Frigate's `EventsSubLabelBody`, or None."""
    if not isinstance(body, dict):
        return _detail("model_attributes_type", ["body"], "Input should be a valid dictionary", body)
    if "subLabel" not in body:
        return _detail("missing", ["body", "subLabel"], "Field required")
    label = body["subLabel"]
    if not isinstance(label, str):
        return _detail("string_type", ["body", "subLabel"], "Input should be a valid string", label)
    if len(label) > 100:
        return _detail(
            "string_too_long", ["body", "subLabel"], "String should have at most 100 characters", label
        )
    camera = body.get("camera")
    if camera is not None and not isinstance(camera, str):
        return _detail("string_type", ["body", "camera"], "Input should be a valid string", camera)
    value = body.get("subLabelScore")
    if value is None:
        return None
    score = _as_float(value)
    if score is None:
        return _detail("float_parsing", ["body", "subLabelScore"], "Input should be a valid number", value)
    if not score > 0:  # NaN fails here too
        return _detail("greater_than", ["body", "subLabelScore"], "Input should be greater than 0", value)
    if not score <= 1:
        return _detail(
            "less_than_equal", ["body", "subLabelScore"], "Input should be less than or equal to 1", value
        )
    return None


def _quality(value: int | None) -> int:
    return 70 if value is None else min(100, max(0, value))


def _reset(request: web.Request) -> None:
    """Drop the connection with an RST (SO_LINGER 0), as a crashed or restarting server would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def event_record(event: SimEvent) -> dict[str, Any]:
    """`GET /api/events/{id}`: the database row; box and region are relative [x, y, w, h]."""
    width, height = event.frame_size

    def relative(box: Box) -> list[float]:
        x1, y1, x2, y2 = box
        return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]

    attributes = [
        {"box": relative(a["box"]), "label": a["label"], "score": a["score"]} for a in _attributes(event)
    ]
    return {
        "id": event.id,
        "label": event.label,
        "sub_label": event.sub_label,
        "camera": event.camera,
        "start_time": event.start_time,
        "end_time": event.end_time,
        "top_score": None,
        "score": None,
        "false_positive": event.false_positive,
        "zones": list(event.zones),
        "thumbnail": None,
        "has_clip": event.has_clip,
        "has_snapshot": event.has_snapshot,
        "region": None,
        "box": None,
        "area": None,
        "retain_indefinitely": False,
        "ratio": 1.0,
        "plus_id": None,
        "model_hash": "00000000000000000000000000000000",
        "detector_type": "cpu",
        "model_type": "ssd",
        "data": {
            "box": relative(event.box),
            "region": relative(calculate_region(event.frame_size, event.box, 320, 1.35)),
            "score": event.score,
            "top_score": event.top_score,
            "attributes": attributes,
            "type": "object",
            "sub_label_score": event.sub_label_score,
            "snapshot_frame_time": event.frame_time,
        },
    }


# --- MQTT ------------------------------------------------------------------------------------


def _attributes(event: SimEvent) -> list[dict[str, Any]]:
    if event.face_box is None:
        return []
    return [{"label": "face", "box": list(event.face_box), "score": event.face_score}]


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def event_object(event: SimEvent, *, frame_time: float | None = None, ended: bool = False) -> dict[str, Any]:
    """One side (`before`/`after`) of a `<prefix>/events` message, with Frigate's fields.

    `frame_time` is the frame the message is about (default: the snapshot's); `ended` fills
    `end_time` (the event's, or that frame's time) as the `end` message does.
    """
    now = event.frame_time if frame_time is None else frame_time
    box = list(event.box)
    region = list(calculate_region(event.frame_size, event.box, 320, 1.35))
    area = _area(event.box)
    attributes = _attributes(event)
    end_time = (event.end_time if event.end_time is not None else now) if ended else event.end_time
    sub_label = [event.sub_label, event.sub_label_score] if event.sub_label_written else None
    return {
        "id": event.id,
        "camera": event.camera,
        "frame_time": now,
        "snapshot": {
            "frame_time": event.frame_time,
            "box": box,
            "area": area,
            "region": region,
            "score": event.score,
            "attributes": attributes,
            "current_estimated_speed": 0,
        },
        "label": event.label,
        "sub_label": sub_label,
        "top_score": event.top_score,
        "false_positive": event.false_positive,
        "start_time": event.start_time,
        "end_time": end_time,
        "score": event.score,
        "box": box,
        "area": area,
        "ratio": round((box[2] - box[0]) / (box[3] - box[1]), 6),
        "region": region,
        "current_zones": [] if ended else list(event.zones),
        "entered_zones": list(event.zones),
        "thumbnail": None,
        "has_snapshot": event.has_snapshot,
        "has_clip": event.has_clip,
        "active": not ended and not event.stationary,
        "stationary": event.stationary,
        "motionless_count": 0,
        "position_changes": 1,
        "attributes": {a["label"]: a["score"] for a in attributes},
        "current_attributes": attributes,
        "pending_loitering": False,
        "current_estimated_speed": 0,
        "average_estimated_speed": 0,
        "velocity_angle": 0,
        "path_data": [],
        "recognized_license_plate": None,
        "recognized_license_plate_score": None,
        "max_severity": "detection",
    }


def event_messages(
    event: SimEvent,
    kind: EventKind,
    *,
    before: Mapping[str, Any] | None = None,
    frame_time: float | None = None,
    prefix: str = "frigate",
) -> tuple[str, bytes]:
    """(topic, payload) of one `<prefix>/events` message; `before` defaults to `after`."""
    after = event_object(event, frame_time=frame_time, ended=kind == "end")
    message = {"type": kind, "before": dict(before) if before is not None else after, "after": after}
    return f"{prefix}/events", json.dumps(message).encode()


def available_message(state: Availability, prefix: str = "frigate") -> tuple[str, bytes]:
    """(topic, payload) of Frigate's availability (retained by Frigate, `offline` as its Will)."""
    return f"{prefix}/available", state.encode()


async def publish_lifecycle(
    client: Publisher,
    prefix: str,
    event: SimEvent,
    updates: int | Sequence[SnapshotUpdate] = 1,
    *,
    interval: float = 0.0,
    end: bool = True,
    qos: int = 1,
) -> list[tuple[str, bytes]]:
    """Publish new -> updates -> end for one object, as Frigate would; returns what was sent.

    Each update with a new snapshot moves the event's snapshot (frame_time +1 s unless given)
    *before* its message goes out, so the HTTP side already serves the picture it announces.
    The `end` sets `event.end_time` (1 s after the last frame) unless it is set already.
    """
    steps = [SnapshotUpdate() for _ in range(updates)] if isinstance(updates, int) else list(updates)
    sent: list[tuple[str, bytes]] = []
    now = event.frame_time

    async def send(kind: EventKind, before: Mapping[str, Any] | None) -> dict[str, Any]:
        topic, payload = event_messages(event, kind, before=before, frame_time=now, prefix=prefix)
        await client.publish(topic, payload, qos=qos, retain=False)
        sent.append((topic, payload))
        return dict(json.loads(payload)["after"])

    last = await send("new", None)
    for step in steps:
        await asyncio.sleep(interval)
        now = step.frame_time if step.frame_time is not None else now + 1.0
        if step.new_snapshot:
            event.move_snapshot(step.photo, step.box, now)
        last = await send("update", last)
    if end:
        await asyncio.sleep(interval)
        now += 1.0
        if event.end_time is None:
            event.end_time = now
        await send("end", last)
    return sent


__all__ = [
    "ROUTES",
    "Camera",
    "Fault",
    "FrigateSimulator",
    "Publisher",
    "SimEvent",
    "SnapshotSettings",
    "SnapshotUpdate",
    "SubLabelWrite",
    "available_message",
    "calculate_region",
    "event_messages",
    "event_object",
    "event_record",
    "publish_lifecycle",
    "render_snapshot",
]
