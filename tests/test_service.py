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
from face_watchlist.frigate.simulator import FrigateSimulator, available_message, publish_lifecycle
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
    # a stranger leaves no biometric trace: the store and the data folder are as they were
    await asyncio.sleep(0.2)
    assert Store(tmp_path / "data").counts() == before
    assert sorted(p for p in (tmp_path / "data").rglob("*") if "index" not in p.parts) == [
        p for p in files_before if "index" not in p.parts
    ]


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
    sim.clear_faults()
    sim.inject("truncate", "snapshot")
    event = sim.add_event("6.0-truncated", "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=0)
    (decision,) = await decisions(watcher, 1)
    assert decision["event_id"] == "6.0-truncated"
    assert service.counters["bad_images"] >= 1
