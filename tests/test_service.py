"""The service end to end: a real Mosquitto broker, the Frigate simulator serving real photos,
the real models and gallery. Frigate events in, decision messages out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import cv2
import numpy as np
import pytest

from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import (
    Camera,
    FrigateSimulator,
    SnapshotSettings,
    available_message,
    publish_lifecycle,
    render_snapshot,
)
from face_watchlist.gallery.store import Store
from face_watchlist.service import Service
from service_rig import rig

DATA = Path(__file__).parent / "data" / "faces"
PROBES = DATA / "face_recognition_knn" / "probe"
STRANGER = DATA / "dlib_johns" / "images" / "John_Simm" / "001.jpg"
BOX = (390, 40, 890, 700)  # the person's box in the 1280x720 frame: a face of ~250 px


def grey_photo() -> bytes:
    return cv2.imencode(".jpg", np.full((480, 360, 3), 128, np.uint8))[1].tobytes()


@pytest.fixture
async def running(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> AsyncIterator[tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client]]:
    async with (
        rig(tmp_path, broker, pipeline, model_dir) as running,
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate") as frigate,
        aiomqtt.Client("127.0.0.1", broker, identifier="watcher") as watcher,
    ):
        await watcher.subscribe("face_watchlist/#", qos=1)
        await asyncio.sleep(0.5)  # the service subscribes
        await frigate.publish(*available_message("online"), qos=1)
        yield running.service, running.sim, frigate, watcher


async def decisions(watcher: aiomqtt.Client, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for message in watcher.messages:
            if message.topic.value == "face_watchlist/events":
                assert isinstance(message.payload, bytes)
                found.append(json.loads(message.payload))
                if len(found) == count:
                    return found
    return found


async def test_enrolled_stranger_and_faceless(
    running: tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client], tmp_path: Path
) -> None:
    _, sim, frigate, watcher = running
    before = Store(tmp_path / "data").counts()
    files_before = sorted((tmp_path / "data").rglob("*"))
    cases = {
        "1.0-enrolled": (PROBES / "obama1.jpg").read_bytes(),
        "2.0-stranger": STRANGER.read_bytes(),
        "3.0-noface": grey_photo(),
    }
    for event_id, photo in cases.items():
        event = sim.add_event(event_id, "front_door", photo, box=BOX)
        await publish_lifecycle(frigate, "frigate", event, updates=1)
    got = {d["event_id"]: d for d in await decisions(watcher, 3)}
    assert got["1.0-enrolled"]["result"] == "match"
    assert got["1.0-enrolled"]["person"] == "obama"
    assert got["1.0-enrolled"]["list"] == "visitors"
    assert got["1.0-enrolled"]["review_state"] == "pending_review"
    assert got["2.0-stranger"]["result"] == "unknown"
    assert got["2.0-stranger"]["person"] is None
    assert got["3.0-noface"]["result"] == "no_face"
    for d in got.values():
        assert {"event_id", "camera", "score", "attempts", "timing_ms"} <= set(d)
    # a stranger leaves no biometric trace: the only new files are the match's evidence, and the
    # other decisions are bare rows (camera, time, result)
    await asyncio.sleep(0.2)
    store = Store(tmp_path / "data")
    assert {k: v for k, v in store.counts().items() if k != "decisions"} == {
        k: v for k, v in before.items() if k != "decisions"
    }
    match_id = got["1.0-enrolled"]["decision_id"]
    assert got["1.0-enrolled"]["evidence"]["face"] == f"/api/decisions/{match_id}/face.jpg"
    added = {p for p in (tmp_path / "data").rglob("*") if p.is_file() and "index" not in p.parts}
    added -= set(files_before)
    assert {p.name for p in added if "evidence" in p.parts} == {
        f"{match_id}-face.jpg",
        f"{match_id}-snapshot.jpg",
    }
    assert all(p.parent == tmp_path / "data" for p in added if "evidence" not in p.parts)  # the WAL
    rows = store.db.execute("SELECT event_id, probe_embedding, evidence, person_id FROM decisions").fetchall()
    assert {r[0] for r in rows} == set(cases)
    for row in rows:
        if row[0] != "1.0-enrolled":
            assert row[1:] == (None, None, None)
    assert got["2.0-stranger"]["decision_id"] is not None
    assert got["2.0-stranger"]["evidence"] is None
    store.close()


async def test_hostile_payloads_do_not_stop_the_service(
    running: tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client],
) -> None:
    service, sim, frigate, watcher = running
    for payload in (b"", b"{", b"[]", b'{"type":"new","after":{"id":5}}', b"x" * 300_000, b"\xff\xfe" * 100):
        await frigate.publish("frigate/events", payload, qos=1)
    event = sim.add_event("4.0-after", "front_door", (PROBES / "alex_lacamoire1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    assert (decision["event_id"], decision["person"]) == ("4.0-after", "alex_lacamoire")
    assert service.counters["refused_messages"] == 6


async def test_frigate_failing_is_reported_not_fatal(
    running: tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client],
) -> None:
    service, sim, frigate, watcher = running
    sim.inject("error", "snapshot")
    event = sim.add_event("5.0-down", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    assert decision["result"] == "no_face" and decision["faces_seen"] == 0  # noqa: PT018
    assert service.counters["frigate_errors"] >= 1
    assert service.status()["frigate_api"] == "unreachable"  # said, not silent: also on the status topic
    sim.clear_faults()
    sim.inject("truncate", "snapshot")
    event = sim.add_event("6.0-truncated", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    assert decision["event_id"] == "6.0-truncated"
    assert service.counters["bad_images"] >= 1


async def test_review_is_published_and_feeds_back(
    running: tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client],
) -> None:
    service, sim, frigate, watcher = running
    event = sim.add_event("7.0-review", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    assert decision["review_state"] == "pending_review"
    seen: list[tuple[str, dict[str, Any]]] = []
    service.add_listener(lambda kind, data: seen.append((kind, data)))
    record = await service.review(decision["decision_id"], "reject", "ha:frontdesk")
    assert record.review_state == "rejected"
    topics: dict[str, Any] = {}
    async with asyncio.timeout(10):
        async for message in watcher.messages:
            assert isinstance(message.payload, bytes)
            topics[message.topic.value] = json.loads(message.payload)
            if (
                "face_watchlist/reviews" in topics
                and topics.get("face_watchlist/status", {}).get("pending_reviews") == 0
            ):
                break
    assert topics["face_watchlist/reviews"]["reviewer"] == "ha:frontdesk"
    assert seen == [("review", topics["face_watchlist/reviews"])]
    status = topics["face_watchlist/status"]
    assert status["people_per_list"] == {"visitors": 5}  # the knn enrolment folder
    assert status["matches_today"] == 1
    # the same face again: the rejection stops the match
    event = sim.add_event("8.0-again", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (again,) = await decisions(watcher, 1)
    assert again["result"] == "unknown"


async def test_person_and_camera_state_are_retained(
    running: tuple[Service, FrigateSimulator, aiomqtt.Client, aiomqtt.Client], broker: int
) -> None:
    _, sim, frigate, watcher = running
    sim.add_camera(Camera("front door"))
    event = sim.add_event("9.0-state", "front door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    async with aiomqtt.Client("127.0.0.1", broker, identifier="late") as late:
        await late.subscribe("face_watchlist/#", qos=1)
        retained: dict[str, bytes] = {}
        wanted = {
            "face_watchlist/cameras/front_door/last",
            f"face_watchlist/people/{decision['person_id']}/last",
            "face_watchlist/status",
            "face_watchlist/available",
        }
        async with asyncio.timeout(5):
            async for message in late.messages:
                assert isinstance(message.payload, bytes)
                retained[message.topic.value] = message.payload
                if wanted <= set(retained):
                    break
    assert json.loads(retained["face_watchlist/cameras/front_door/last"])["event_id"] == "9.0-state"
    assert retained["face_watchlist/available"] == b"online"


async def test_latest_frame_when_the_snapshot_face_is_too_small(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with (
        rig(tmp_path, broker, pipeline, model_dir, snapshot_height=72) as running,
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate") as frigate,
        aiomqtt.Client("127.0.0.1", broker, identifier="watcher") as watcher,
    ):
        await watcher.subscribe("face_watchlist/events", qos=1)
        await asyncio.sleep(0.5)
        # a camera whose snapshots are scaled down (also the file Frigate < 0.18 keeps at the end)
        running.sim.add_camera(Camera("front_door", snapshots=SnapshotSettings(height=72)))
        event = running.sim.add_event("10.0-far", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
        # the person is still in view when the service looks (the simulator ends the event at once)
        frame = render_snapshot(event, crop=False, height=None, quality=90, bbox=False, timestamp=False)
        running.sim.set_latest("front_door", frame)
        await publish_lifecycle(frigate, "frigate", event, updates=0)
        (decision,) = await decisions(watcher, 1)
        assert (decision["result"], decision["person"]) == ("match", "obama")
        assert "latest_frame_ms" in decision["timing_ms"]
        counters = running.service.counters
        assert counters["latest_frame_looks"] >= 1
        assert counters["latest_frame_faces"] >= 1
