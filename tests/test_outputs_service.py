"""The outputs inside the running service: a real Mosquitto, the Frigate simulator, the real models.
A decision reaches HA's discovery topics, Frigate's sub_label and a fake HA REST server; with HA and
Frigate's sub_label route down the decisions still flow on MQTT."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import available_message, publish_lifecycle
from face_watchlist.outputs.discovery import face_topic
from fake_ha import FakeHomeAssistant
from service_rig import Rig, rig
from test_outputs import retained, until

PROBES = Path(__file__).parent / "data" / "faces" / "face_recognition_knn" / "probe"
BOX = (390, 40, 890, 700)


@pytest.fixture
async def home_assistant() -> AsyncIterator[FakeHomeAssistant]:
    ha = FakeHomeAssistant()
    await ha.start()
    yield ha
    await ha.stop()


def _options(ha: FakeHomeAssistant) -> dict[str, dict[str, Any]]:
    return {
        "frigate": {"write_sub_label": True},  # sub_label_when: confirmed (the default)
        "homeassistant": {"url": ha.url, "token": ha.token},
        "outputs": {"evidence_base_url": "http://fw.local:8099"},
    }


async def _match(
    running: Rig, frigate: aiomqtt.Client, watcher: aiomqtt.Client, event_id: str
) -> dict[str, Any]:
    event = running.sim.add_event(event_id, "front_door", (PROBES / "obama1.jpg").read_bytes(), box=BOX)
    await publish_lifecycle(frigate, "frigate", event, updates=1)
    async with asyncio.timeout(60):
        async for message in watcher.messages:
            if message.topic.value == "face_watchlist/events":
                assert isinstance(message.payload, bytes)
                decision: dict[str, Any] = json.loads(message.payload)
                if decision["event_id"] == event_id:
                    return decision
    raise AssertionError("no decision")


async def test_a_decision_reaches_discovery_sub_label_and_ha_events(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, home_assistant: FakeHomeAssistant
) -> None:
    async with (
        rig(tmp_path, broker, pipeline, model_dir, options=_options(home_assistant), outputs=True) as running,
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate") as frigate,
        aiomqtt.Client("127.0.0.1", broker, identifier="watcher") as watcher,
    ):
        await watcher.subscribe("face_watchlist/events", qos=1)
        await asyncio.sleep(0.5)
        await frigate.publish(*available_message("online"), qos=1)
        decision = await _match(running, frigate, watcher, "1.0-obama")
        seen = time.monotonic()
        assert decision["result"] == "match"
        assert decision["review_state"] == "pending_review"
        await until(lambda: len(home_assistant.fired) == 1, 20)
        ha_ms = (time.monotonic() - seen) * 1000
        kind, data = home_assistant.fired[0]
        assert kind == "face_watchlist_match"
        assert data["event_type"] == "review_needed"
        assert data["person"] == decision["person"]
        assert data["event_id"] == "1.0-obama"
        assert (
            data["evidence_url"] == f"http://fw.local:8099/api/decisions/{decision['decision_id']}/face.jpg"
        )

        configs = await retained(broker, "homeassistant/device/+/config")
        cameras = [
            json.loads(c) for c in configs.values() if json.loads(c)["device"].get("model") == "Camera"
        ]
        assert [c["device"]["name"] for c in cameras] == ["Face Watchlist front_door"]
        face = await retained(broker, face_topic("front_door"))
        assert face[face_topic("front_door")][:2] == b"\xff\xd8"  # the evidence crop, a JPEG
        assert running.sim.sub_label_writes == []  # a review_first list: nobody confirmed yet

        await running.service.review(decision["decision_id"], "confirm", "ha:alice")
        await until(lambda: len(running.sim.sub_label_writes) == 1, 20)
        write = running.sim.sub_label_writes[0]
        assert (write.event_id, write.sub_label, write.user) == ("1.0-obama", decision["person"], "admin")
        await until(lambda: len(home_assistant.fired) == 2, 20)
        assert home_assistant.fired[1][1]["event_type"] == "match"
        assert home_assistant.fired[1][1]["reviewer"] == "ha:alice"
        print(f"decision on MQTT -> HA event answered: {ha_ms:.0f} ms")


async def test_decisions_flow_while_home_assistant_and_frigates_sub_label_are_down(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, home_assistant: FakeHomeAssistant
) -> None:
    await home_assistant.stop()  # nothing listens on its port any more
    options = _options(home_assistant)
    options["frigate"]["sub_label_when"] = "match"
    async with (
        rig(tmp_path, broker, pipeline, model_dir, options=options, outputs=True) as running,
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate") as frigate,
        aiomqtt.Client("127.0.0.1", broker, identifier="watcher") as watcher,
    ):
        running.sim.inject("reset", "sub_label")  # Frigate drops every sub_label write
        await watcher.subscribe("face_watchlist/events", qos=1)
        await asyncio.sleep(0.5)
        await frigate.publish(*available_message("online"), qos=1)
        first = await _match(running, frigate, watcher, "1.0-a")
        second = await _match(running, frigate, watcher, "2.0-b")
        assert first["result"] == second["result"] == "match"
        assert running.sim.sub_label_writes == []
        outputs = {o.name: o for o in running.service.outputs}
        await until(lambda: outputs["ha_events"].stats["retries"] >= 1, 20)  # type: ignore[attr-defined]
        await until(lambda: outputs["sub_label"].stats["retries"] >= 1, 20)  # type: ignore[attr-defined]
        assert running.service.counters["published_match"] == 2
        assert not any(k.startswith("output_errors") for k in running.service.counters)
        status = running.service.status()["outputs"]  # the trouble is visible, not only in the log
        assert status["ha_events"]["retries"] >= 1
        assert status["sub_label"]["retries"] >= 1
