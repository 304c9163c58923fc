"""The Frigate simulator: its HTTP API over a real aiohttp server on 127.0.0.1 (auth, snapshots,
latest frames, config, sub_label writes, injected faults) and its MQTT messages, which must parse
with our own parser and drive the tracker as Frigate's do."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import cv2
import numpy as np
import pytest
import simplejpeg

from face_watchlist.frigate.events import parse_event
from face_watchlist.frigate.simulator import (
    Camera,
    FrigateSimulator,
    SimEvent,
    SnapshotUpdate,
    available_message,
    calculate_region,
    event_messages,
    publish_lifecycle,
)
from face_watchlist.frigate.tracker import Tracker

DATA = Path(__file__).parent / "data"
PROBE = DATA / "faces" / "face_recognition_knn" / "probe"
JOHNS = DATA / "faces" / "dlib_johns" / "images"
SAMPLES = DATA / "frigate" / "frigate-mqtt-samples.jsonl"
EVENT_ID = "1764150000.123456-k3x9q2"
PASSWORD = "correct horse battery"

Serve = Callable[..., Awaitable[FrigateSimulator]]


class Clock:
    """A clock the test moves: token expiry without sleeping."""

    def __init__(self) -> None:
        self.now = 1_764_150_000.0

    def __call__(self) -> float:
        return self.now


def photo(path: Path) -> bytes:
    return path.read_bytes()


def decode(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    image = simplejpeg.decode_jpeg(data, colorspace="BGR")  # strict: a broken JPEG raises
    assert isinstance(image, np.ndarray)
    return image


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[FrigateSimulator] = []

    async def make(**options: Any) -> FrigateSimulator:
        sim = FrigateSimulator(**{"password": PASSWORD, **options})
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def login(http: aiohttp.ClientSession, sim: FrigateSimulator, user: str = "admin") -> str:
    password = PASSWORD if user == "admin" else "viewer-password"
    async with http.post(f"{sim.base_url}/api/login", json={"user": user, "password": password}) as r:
        assert r.status == 200
        return r.cookies["frigate_token"].value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- auth --------------------------------------------------------------------------------------


async def test_login_issues_an_expiring_token_and_every_route_needs_it(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    sim = await serve(auth=True, clock=clock, token_ttl=300)
    sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    url = sim.base_url
    routes = ["/api/config", f"/api/events/{EVENT_ID}", f"/api/events/{EVENT_ID}/snapshot.jpg"]
    routes += ["/api/front_door/latest.jpg", "/api/no/such/route"]  # nginx asks for auth first
    for route in routes:
        async with http.get(url + route) as r:
            assert r.status == 401, route
    async with http.get(f"{url}/api/version") as r:  # public, like nginx's `auth_request off`
        assert (r.status, await r.text()) == (200, "0.17.2")

    for body in ({"user": "admin", "password": "wrong"}, {"user": "nobody", "password": PASSWORD}):
        async with http.post(f"{url}/api/login", json=body) as r:
            assert r.status == 401
            assert "frigate_token" not in r.cookies
    async with http.post(f"{url}/api/login", json={"user": "admin"}) as r:
        assert r.status == 422
        assert (await r.json())["detail"][0]["loc"] == ["body", "password"]

    async with http.post(f"{url}/api/login", json={"user": "admin", "password": PASSWORD}) as r:
        assert r.status == 200
        assert await r.read() == b""  # like Frigate: the token comes as the cookie only
        token = r.cookies["frigate_token"].value
        assert r.cookies["frigate_token"]["httponly"]
    for route in routes:
        async with http.get(url + route, headers=bearer(token)) as r:
            assert r.status == (404 if "no/such" in route else 200), route
    async with http.get(f"{url}/api/config", headers={"Cookie": f"frigate_token={token}"}) as r:
        assert r.status == 200

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other = FrigateSimulator(password=PASSWORD, clock=clock).issue_token("admin")  # another secret
    for bad in (forged, other, "not-a-jwt", ""):
        async with http.get(f"{url}/api/config", headers=bearer(bad)) as r:
            assert r.status == 401

    clock.now += 299
    async with http.get(f"{url}/api/config", headers=bearer(token)) as r:
        assert r.status == 200
    clock.now += 1  # exp reached: the client must log in again
    async with http.get(f"{url}/api/config", headers=bearer(token)) as r:
        assert r.status == 401
    fresh = await login(http, sim)
    async with http.get(f"{url}/api/config", headers=bearer(fresh)) as r:
        assert r.status == 200
    assert sim.requests["login"] == 5
    assert sim.requests["config"] == 1 + 1 + 1 + 4 + 1 + 1 + 1


async def test_sub_label_needs_the_admin_role_and_csrf_header_when_browsers_post(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    sim = await serve(auth=True, extra_users={"guard": ("viewer-password", "viewer")})
    sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    viewer = await login(http, sim, "guard")
    target = f"{sim.base_url}/api/events/{EVENT_ID}/sub_label"
    async with http.get(f"{sim.base_url}/api/events/{EVENT_ID}/snapshot.jpg", headers=bearer(viewer)) as r:
        assert r.status == 200
    async with http.post(target, json={"subLabel": "Jane"}, headers=bearer(viewer)) as r:
        assert r.status == 403
    admin = await login(http, sim)
    with_origin = {**bearer(admin), "Origin": "http://evil.example"}
    async with http.post(target, json={"subLabel": "Jane"}, headers=with_origin) as r:
        assert (r.status, (await r.json())["message"]) == (401, "Missing CSRF header")
    async with http.post(
        target, json={"subLabel": "Jane"}, headers={**with_origin, "X-CSRF-TOKEN": "1"}
    ) as r:
        assert r.status == 200
    assert [(w.sub_label, w.user) for w in sim.sub_label_writes] == [("Jane", "admin")]


async def test_the_internal_port_needs_no_auth(serve: Serve, http: aiohttp.ClientSession) -> None:
    sim = await serve(auth=False)
    sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    for route in ("/api/config", f"/api/events/{EVENT_ID}/snapshot.jpg", "/api/front_door/latest.jpg"):
        async with http.get(sim.base_url + route) as r:
            assert r.status == 200, route
    async with http.post(f"{sim.base_url}/api/events/{EVENT_ID}/sub_label", json={"subLabel": "X"}) as r:
        assert r.status == 200
    assert sim.sub_label_writes[0].user == "anonymous"
    assert await login(http, sim)  # login still works on port 5000


# --- images ------------------------------------------------------------------------------------


async def test_snapshot_height_quality_crop_and_the_ignored_h(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    sim = await serve(auth=False)
    event = sim.add_event(EVENT_ID, "front_door", photo(PROBE / "johnsnow_test1.jpg"))  # 768x1154
    assert event.box == (448, 72, 831, 648)  # the portrait fitted into 80 % of the frame height
    base = f"{sim.base_url}/api/events/{EVENT_ID}/snapshot.jpg"

    async def fetch(query: str) -> tuple[bytes, np.ndarray[Any, np.dtype[np.uint8]]]:
        async with http.get(f"{base}?{query}") as r:
            assert (r.status, r.content_type) == (200, "image/jpeg"), query
            data = await r.read()
            return data, decode(data)

    _, full = await fetch("")
    assert full.shape[:2] == (720, 1280)
    _, small = await fetch("height=360")
    assert small.shape[:2] == (360, 640)
    _, ignored = await fetch("h=100")  # Frigate >= 0.15 silently ignores `h`
    assert ignored.shape[:2] == (720, 1280)

    region = calculate_region((1280, 720), event.box, 300, 1.1)
    assert region == (323, 44, 955, 676)  # a square 1.1x the box's longer side
    _, crop = await fetch("crop=1&bbox=0&quality=95")
    assert crop.shape[:2] == (632, 632)
    x1, y1, x2, y2 = region
    expected = event.frame()[y1:y2, x1:x2]
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 3  # the frame's pixels, re-encoded
    _, crop_small = await fetch("crop=1&height=270")
    assert crop_small.shape[:2] == (270, 270)

    low, _ = await fetch("quality=10&bbox=0")
    high, _ = await fetch("quality=95&bbox=0")
    default, _ = await fetch("bbox=0")
    assert len(low) < len(default) < len(high)

    left_edge = (event.box[0], (event.box[1] + event.box[3]) // 2)
    _, boxed = await fetch("quality=95&bbox=1")
    _, clean = await fetch("quality=95")  # before 0.18 a live snapshot has no box unless asked
    assert _is_green(boxed[left_edge[1], left_edge[0]])
    assert not _is_green(clean[left_edge[1], left_edge[0]])

    async with http.get(f"{sim.base_url}/api/events/nope/snapshot.jpg") as r:
        assert r.status == 404
    async with http.get(f"{base}?height=abc") as r:
        assert r.status == 422


def _is_green(pixel: np.ndarray[Any, np.dtype[np.uint8]]) -> bool:
    blue, green, red = (int(v) for v in pixel)
    return green > 180 and blue < 90 and red < 90


async def test_ended_events_serve_the_stored_snapshot_before_0_18(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    for version, size in (("0.17.2", (720, 1280)), ("0.18.0", (270, 270))):
        sim = await serve(auth=False, version=version)
        sim.add_event(EVENT_ID, "front_door", photo(PROBE / "kit_with_rose.jpg"))
        url = f"{sim.base_url}/api/events/{EVENT_ID}/snapshot.jpg?crop=1&height=270"
        async with http.get(url) as r:  # in progress: the query is honoured by every version
            assert decode(await r.read()).shape[:2] == (270, 270)
            assert ("X-Frame-Time" in r.headers) == (version == "0.18.0")
        sim.end_event(EVENT_ID)
        async with http.get(url) as r:
            assert decode(await r.read()).shape[:2] == size, version
        sim.add_event("2.0-nosnap", "front_door", photo(PROBE / "kit_with_rose.jpg"), has_snapshot=False)
        sim.end_event("2.0-nosnap")
        async with http.get(f"{sim.base_url}/api/events/2.0-nosnap/snapshot.jpg") as r:
            assert r.status == 404


async def test_latest_frame_composes_the_people_in_view(serve: Serve, http: aiohttp.ClientSession) -> None:
    sim = await serve(auth=False, cameras=[Camera("front_door"), Camera("office_hall", 640, 480)])
    url = sim.base_url
    empty = sim.latest_frame("front_door")
    assert (empty == empty[0, 0]).all()  # nobody in view: a plain frame

    john = photo(JOHNS / "John_Salley" / "001.jpg")  # a 150x150 face crop
    sim.add_event("1.0-a", "front_door", john, box=(100, 200, 250, 350))
    sim.add_event("2.0-b", "front_door", photo(JOHNS / "John_Simm" / "001.jpg"), box=(900, 100, 1000, 400))
    frame = sim.latest_frame("front_door")
    pixels = cv2.imdecode(np.frombuffer(john, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    assert np.array_equal(frame[200:350, 100:250], pixels)  # fits its box exactly: pasted as is
    assert not (frame[200:300, 900:1000] == empty[0, 0]).all()  # the second person, letterboxed

    async with http.get(f"{url}/api/front_door/latest.jpg?quality=95") as r:
        latest = decode(await r.read())
    assert latest.shape[:2] == (720, 1280)
    assert np.abs(latest.astype(int) - frame.astype(int)).mean() < 3
    async with http.get(f"{url}/api/front_door/latest.jpg?height=360") as r:
        assert decode(await r.read()).shape[:2] == (360, 640)
    async with http.get(f"{url}/api/office_hall/latest.jpg") as r:
        assert decode(await r.read()).shape[:2] == (480, 640)
    async with http.get(f"{url}/api/garage/latest.jpg") as r:
        assert r.status == 404

    sim.end_event("1.0-a")  # gone from view
    assert (sim.latest_frame("front_door")[200:350, 100:250] == empty[0, 0]).all()
    sim.set_latest("front_door", photo(PROBE / "obama1.jpg"))  # any picture, scaled to 1280x720
    assert sim.latest_frame("front_door").shape[:2] == (720, 1280)


async def test_config_and_event_json(serve: Serve, http: aiohttp.ClientSession) -> None:
    cameras = [Camera("front_door", zones=("front_entrance",)), Camera("office_hall", 640, 480)]
    sim = await serve(auth=False, cameras=cameras, face_recognition=True)
    event = sim.add_event(EVENT_ID, "office_hall", photo(PROBE / "obama1.jpg"), box=(64, 48, 320, 240))
    async with http.get(f"{sim.base_url}/api/config") as r:
        config = await r.json()
    assert config["face_recognition"]["enabled"] is True
    assert config["cameras"]["office_hall"]["detect"] | {"fps": 5} == {
        "enabled": True,
        "width": 640,
        "height": 480,
        "fps": 5,
    }
    assert list(config["cameras"]["front_door"]["zones"]) == ["front_entrance"]
    assert config["mqtt"]["topic_prefix"] == "frigate"

    async with http.get(f"{sim.base_url}/api/events/{EVENT_ID}") as r:
        record = await r.json()
    assert record["id"] == EVENT_ID
    assert (record["camera"], record["label"], record["sub_label"]) == ("office_hall", "person", None)
    assert (record["start_time"], record["end_time"]) == (event.start_time, None)
    assert (record["has_snapshot"], record["has_clip"]) == (True, True)
    assert record["box"] is None  # a dead column: the box lives in data, relative [x, y, w, h]
    assert record["data"]["box"] == [0.1, 0.1, 0.4, 0.4]
    async with http.get(f"{sim.base_url}/api/events/nope") as r:
        assert r.status == 404


# --- sub_label ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"subLabel": "x" * 101},
        {"subLabel": "Jane", "subLabelScore": 0},
        {"subLabel": "Jane", "subLabelScore": -0.1},
        {"subLabel": "Jane", "subLabelScore": 1.01},
        {"subLabel": "Jane", "subLabelScore": "high"},
        {"subLabel": "Jane", "subLabelScore": True},
        {"subLabel": 5},
        {"subLabelScore": 0.9},
        {"subLabel": "Jane", "camera": 3},
        ["Jane"],
    ],
)
async def test_sub_label_validation(serve: Serve, http: aiohttp.ClientSession, body: Any) -> None:
    sim = await serve(auth=False)
    sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    async with http.post(f"{sim.base_url}/api/events/{EVENT_ID}/sub_label", json=body) as r:
        assert r.status == 422
        assert (await r.json())["detail"]
    async with http.post(f"{sim.base_url}/api/events/{EVENT_ID}/sub_label", data=b"{not json") as r:
        assert r.status == 422
    assert sim.sub_label_writes == []


async def test_sub_label_writes_are_recorded_and_reach_the_next_messages(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    sim = await serve(auth=False)
    event = sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    target = f"{sim.base_url}/api/events/{EVENT_ID}/sub_label"
    for body in (
        {"subLabel": "x" * 100, "subLabelScore": 1},
        {"subLabel": "Barack", "subLabelScore": "0.5", "camera": "front_door"},
        {"subLabel": "Barack"},
    ):
        async with http.post(target, json=body) as r:
            assert r.status == 200
    async with http.post(target, json={"subLabel": "Barack", "subLabelScore": 0.93}) as r:
        assert await r.json() == {"success": True, "message": f"Event {EVENT_ID} sub label set to Barack"}
    assert parse_event(event_messages(event, "update")[1]).sub_label == "Barack"
    assert json.loads(event_messages(event, "update")[1])["after"]["sub_label"] == ["Barack", 0.93]
    async with http.get(f"{sim.base_url}/api/events/{EVENT_ID}") as r:
        record = await r.json()
        assert (record["sub_label"], record["data"]["sub_label_score"]) == ("Barack", 0.93)

    async with http.post(target, json={"subLabel": "", "subLabelScore": 0.5}) as r:  # "" clears
        assert (await r.json())["message"].endswith("set to None")
    assert json.loads(event_messages(event, "update")[1])["after"]["sub_label"] == [None, None]
    assert parse_event(event_messages(event, "update")[1]).sub_label is None

    async with http.post(f"{sim.base_url}/api/events/nope/sub_label", json={"subLabel": "A"}) as r:
        assert r.status == 404
    writes = [(w.event_id, w.sub_label, w.score, w.camera) for w in sim.sub_label_writes]
    assert writes == [
        (EVENT_ID, "x" * 100, 1.0, None),
        (EVENT_ID, "Barack", 0.5, "front_door"),
        (EVENT_ID, "Barack", None, None),
        (EVENT_ID, "Barack", 0.93, None),
        (EVENT_ID, None, None, None),
    ]
    assert sim.requests["sub_label"] == 6


# --- faults ------------------------------------------------------------------------------------


async def test_faults_error_delay_truncate_reset(serve: Serve, http: aiohttp.ClientSession) -> None:
    sim = await serve(auth=False)
    sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"))
    snapshot = f"{sim.base_url}/api/events/{EVENT_ID}/snapshot.jpg"
    config = f"{sim.base_url}/api/config"

    sim.inject("error", "snapshot", times=2)  # fails twice, then recovers
    statuses = []
    for _ in range(3):
        async with http.get(snapshot) as r:
            statuses.append(r.status)
    assert statuses == [500, 500, 200]
    sim.inject("error")  # every route, until cleared
    async with http.get(config) as r:
        assert r.status == 500
    sim.inject("truncate", "snapshot")  # a route's own fault wins over the global one
    async with http.get(snapshot) as r:
        body = await r.read()
        assert r.status == 200
    assert body.startswith(b"\xff\xd8")
    assert b"\xff\xd9" not in body
    with pytest.raises(ValueError, match="Premature end"):
        decode(body)
    sim.clear_faults()

    sim.inject("delay", "config", delay=2.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with http.get(config, timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
    assert time.monotonic() - started < 1.0
    sim.inject("delay", "config", delay=0.05, times=1)  # slow but within the client's patience
    async with http.get(config) as r:
        assert r.status == 200

    # aiohttp retries once when a reused connection drops: two resets reach the caller
    sim.inject("reset", "snapshot", times=2)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(snapshot) as r:
            await r.read()
    async with http.get(snapshot) as r:  # a new connection works again
        assert r.status == 200
    assert sim.requests["snapshot"] == 3 + 1 + 2 + 1
    assert sim.requests["config"] == 1 + 1 + 1


# --- MQTT --------------------------------------------------------------------------------------


def _sample_after_keys() -> set[str]:
    rows = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    return {key for r in rows if r["topic"] == "frigate/events" for key in r["payload"]["after"]}


def _event(**changes: Any) -> SimEvent:
    base: dict[str, Any] = {
        "id": EVENT_ID,
        "camera": "front_door",
        "photo": photo(JOHNS / "John_Salley" / "001.jpg"),
        "box": (612, 188, 742, 530),
        "frame_time": 1764150000.523456,
        "start_time": 1764150000.123456,
        "zones": ("front_entrance",),
    }
    return SimEvent(**(base | changes))


def test_event_messages_have_frigates_fields_and_parse() -> None:
    event = _event(face_box=(650, 180, 700, 238), face_score=0.71)
    topic, payload = event_messages(event, "new", prefix="nvr")
    assert topic == "nvr/events"
    message = json.loads(payload)
    assert message["type"] == "new"
    assert message["before"] == message["after"]
    after = message["after"]
    assert _sample_after_keys() <= set(after)
    assert set(after["snapshot"]) >= {"frame_time", "box", "area", "region", "score", "attributes"}
    assert (after["box"], after["area"], after["sub_label"], after["end_time"]) == (
        [612, 188, 742, 530],
        44460,
        None,
        None,
    )
    assert after["attributes"] == {"face": 0.71}
    assert after["current_attributes"] == [{"label": "face", "box": [650, 180, 700, 238], "score": 0.71}]
    parsed = parse_event(payload)
    assert (parsed.type, parsed.id, parsed.camera, parsed.label) == ("new", EVENT_ID, "front_door", "person")
    assert parsed.zones == ("front_entrance",)
    assert parsed.face_attribute_score == 0.71
    assert parsed.snapshot is not None
    assert parsed.snapshot.frame_time == event.frame_time

    end = parse_event(event_messages(event, "end", frame_time=1764150006.0)[1])
    assert (end.type, end.end_time) == ("end", 1764150006.0)
    assert event.end_time is None  # a pure helper: the event is not changed
    assert available_message("online") == ("frigate/available", b"online")
    assert available_message("offline", "nvr") == ("nvr/available", b"offline")


def test_messages_drive_the_tracker_like_frigates() -> None:
    event = _event()
    tracker = Tracker()
    steps = []
    new = json.loads(event_messages(event, "new")[1])["after"]
    steps.append(tracker.step(parse_event(event_messages(event, "new")[1])))
    event.move_snapshot(photo(JOHNS / "John_Salley" / "002.jpg"))  # a better snapshot
    steps.append(tracker.step(parse_event(event_messages(event, "update", before=new)[1])))
    moved = event_messages(event, "update", frame_time=event.frame_time + 3)[1]  # zones only
    steps.append(tracker.step(parse_event(moved)))
    steps.append(tracker.step(parse_event(event_messages(event, "end", frame_time=event.frame_time + 5)[1])))
    assert [(s.action, s.attempt, s.final) for s in steps] == [
        ("attempt", 1, False),
        ("attempt", 2, False),
        ("skip", 0, False),
        ("skip", 0, True),
    ]
    assert len(tracker) == 0


class Recorder:
    """A stand-in for aiomqtt.Client that notes what the server would serve at each message."""

    def __init__(self, sim: FrigateSimulator) -> None:
        self.sim = sim
        self.sent: list[tuple[str, dict[str, Any], float, int]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        event = self.sim.events[EVENT_ID]
        self.sent.append((topic, json.loads(payload), event.frame_time, qos))


async def test_publish_lifecycle_moves_the_served_snapshot_before_announcing_it(serve: Serve) -> None:
    sim = await serve(auth=False)
    sim.add_event(EVENT_ID, "front_door", photo(JOHNS / "John_Salley" / "001.jpg"), box=(600, 170, 748, 560))
    better = photo(JOHNS / "John_Salley" / "003.jpg")
    client = Recorder(sim)
    updates = [
        SnapshotUpdate(photo=better),
        SnapshotUpdate(new_snapshot=False),
        SnapshotUpdate(box=(500, 100, 700, 500)),
    ]
    sent = await publish_lifecycle(client, "frigate", sim.events[EVENT_ID], updates)
    kinds = [m["type"] for _, m, _, _ in client.sent]
    assert kinds == ["new", "update", "update", "update", "end"]
    assert len(sent) == 5
    assert all(qos == 1 for *_, qos in client.sent)
    for _, message, served_frame_time, _ in client.sent:
        assert message["after"]["snapshot"]["frame_time"] == served_frame_time
    times = [m["after"]["snapshot"]["frame_time"] for _, m, _, _ in client.sent]
    assert times[0] < times[1] == times[2] < times[3] == times[4]
    assert client.sent[1][1]["before"] == client.sent[0][1]["after"]
    assert sim.events[EVENT_ID].photo == better
    assert sim.events[EVENT_ID].box == (500, 100, 700, 500)
    assert sim.events[EVENT_ID].end_time == client.sent[-1][1]["after"]["end_time"]


# --- with a real broker ------------------------------------------------------------------------


async def test_lifecycle_over_mosquitto_then_the_snapshot_over_http(
    serve: Serve, http: aiohttp.ClientSession, broker: int
) -> None:
    sim = await serve(auth=True, version="0.18.0")  # 0.18 crops ended events' snapshots on request
    event = sim.add_event(EVENT_ID, "front_door", photo(PROBE / "obama1.jpg"), box=(400, 100, 900, 600))
    async with (
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate-sim") as frigate,
        aiomqtt.Client("127.0.0.1", broker, identifier="watcher") as watcher,
    ):
        await watcher.subscribe("school/#", qos=1)
        await frigate.publish(*available_message("online", "school"), qos=1)
        await publish_lifecycle(frigate, "school", event, updates=2)
        received: list[tuple[str, bytes]] = []
        async with asyncio.timeout(5):
            async for message in watcher.messages:
                assert isinstance(message.payload, bytes)
                received.append((message.topic.value, message.payload))
                if len(received) == 5:
                    break
    assert received[0] == ("school/available", b"online")
    tracker = Tracker()
    steps = []
    for topic, payload in received[1:]:
        assert topic == "school/events"
        steps.append(tracker.step(parse_event(payload)))
    assert [(s.action, s.final) for s in steps] == [
        ("attempt", False),
        ("attempt", False),
        ("attempt", False),
        ("skip", True),
    ]

    token = await login(http, sim)
    async with http.get(
        f"{sim.base_url}/api/events/{EVENT_ID}/snapshot.jpg?crop=1&bbox=0", headers=bearer(token)
    ) as r:
        assert decode(await r.read()).shape[:2] == (548, 548)  # 1.1 x the 500 px box, a multiple of 4
