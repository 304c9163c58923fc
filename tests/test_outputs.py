"""Outputs driven directly with decision and review dicts: HA MQTT discovery over a real Mosquitto,
Frigate sub_label write-back against the simulator, HA Core events against a local aiohttp server
speaking HA's REST API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest

from face_watchlist.config import load_settings
from face_watchlist.frigate.simulator import FrigateSimulator
from face_watchlist.outputs.build import build_outputs
from face_watchlist.outputs.discovery import (
    ANNOUNCED_TOPIC,
    INTEGRATION_TOPIC,
    Discovery,
    camera_config,
    event_payload,
    face_topic,
    service_config,
)
from face_watchlist.outputs.ha_events import EVENT_MATCH, HaEvents
from face_watchlist.outputs.retry import Backoff
from face_watchlist.outputs.sub_label import SubLabel, frigate_score
from fake_ha import FakeHomeAssistant

FAST = Backoff(attempts=4, first_s=0.05, max_s=0.2)
PHOTO = b"\xff\xd8 not decoded by the outputs"


def match(event_id: str = "1.0-abc", camera: str = "front_door", **extra: Any) -> dict[str, Any]:
    data = {
        "event_id": event_id,
        "camera": camera,
        "result": "match",
        "person": "Jane Doe",
        "person_id": 7,
        "list": "registry",
        "list_kind": "watch",
        "review_state": "pending_review",
        "decision_id": 42,
        "evidence": {"face": "/api/decisions/42/face.jpg", "snapshot": "/api/decisions/42/snapshot.jpg"},
        "score": 0.61,
        "margin": 0.2,
        "false_match_rate": 1e-5,
        "final": False,
        "timestamp": 1718000001.5,
    }
    return {**data, **extra}


def review(state: str, event_id: str = "1.0-abc", decision_id: int = 42) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "event_id": event_id,
        "camera": "front_door",
        "person": "Jane Doe",
        "person_id": 7,
        "list": "registry",
        "review_state": state,
        "reviewer": "alice",
        "timestamp": 1718000100.0,
    }


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


# --- discovery payloads: key by key against HA's MQTT discovery schema (HA 2026.10's mqtt/) ----

# what HA's schemas accept; anything else is silently dropped by HA (extra=REMOVE_EXTRA)
COMMON = {
    "platform",
    "unique_id",
    "default_entity_id",
    "name",
    "icon",
    "entity_category",
    "entity_picture",
    "enabled_by_default",
    "json_attributes_topic",
    "json_attributes_template",
    "availability_topic",
    "availability",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "device",
    "origin",
    "qos",
    "encoding",
}
RO = {"state_topic", "value_template"}
PLATFORM_KEYS = {
    "sensor": COMMON
    | RO
    | {"device_class", "state_class", "unit_of_measurement", "expire_after", "force_update", "options"},
    "binary_sensor": COMMON
    | RO
    | {"device_class", "expire_after", "force_update", "off_delay", "payload_on", "payload_off"},
    "image": COMMON | {"image_topic", "url_topic", "content_type", "image_encoding", "url_template"},
    "event": COMMON | RO | {"event_types", "device_class"},
}
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "event": {"state_topic", "event_types"},
}
DEVICE_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ROOT_KEYS = {"device", "components", "origin", "state_topic", "command_topic", "qos", "encoding"} | {
    "availability_topic",
    "availability",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
}


@pytest.mark.parametrize("config", [service_config("abc123"), camera_config("abc123", "Front door")])
def test_discovery_payloads_use_only_keys_home_assistant_knows(config: dict[str, Any]) -> None:
    assert set(config) <= ROOT_KEYS
    assert {"device", "components", "origin"} <= set(config)
    assert set(config["device"]) <= DEVICE_KEYS
    assert config["device"]["identifiers"]
    assert set(config["origin"]) <= {"name", "sw_version", "support_url"}
    assert config["origin"]["name"]
    assert config["availability_topic"] == "face_watchlist/available"
    ids = set()
    for key, component in config["components"].items():
        platform = component["platform"]
        unknown = set(component) - PLATFORM_KEYS[platform]
        assert not unknown, f"{key}: HA's {platform} schema has no {unknown}"
        assert REQUIRED.get(platform, set()) <= set(component), key
        assert "object_id" not in component, "object_id stopped working in HA 2026.4"
        domain, _, object_id = component["default_entity_id"].partition(".")
        assert domain == platform
        assert object_id.replace("_", "").isalnum()
        assert object_id.islower()
        ids.add(component["unique_id"])
    assert len(ids) == len(config["components"])


def test_camera_device_entities() -> None:
    config = camera_config("abc123", "Front door")
    by_platform = {c["platform"]: c for c in config["components"].values()}
    assert set(by_platform) == {"sensor", "binary_sensor", "image", "event"}
    assert by_platform["sensor"]["state_topic"] == "face_watchlist/cameras/Front_door/last"
    assert by_platform["sensor"]["json_attributes_topic"] == "face_watchlist/cameras/Front_door/last"
    assert (
        by_platform["image"]["image_topic"]
        == face_topic("Front door")
        == "face_watchlist/cameras/Front_door/face"
    )
    assert by_platform["event"]["event_types"] == ["match", "review_needed", "unknown"]
    assert config["device"]["via_device"] == service_config("abc123")["device"]["identifiers"][0]


def test_event_payloads() -> None:
    assert event_payload("decision", match())["event_type"] == "review_needed"  # type: ignore[index]
    assert event_payload("decision", match(review_state="alert"))["event_type"] == "match"  # type: ignore[index]
    assert event_payload("decision", {"result": "no_face", "camera": "x"}) is None
    assert event_payload("review", review("confirmed"))["event_type"] == "match"  # type: ignore[index]
    assert event_payload("review", review("rejected")) is None


# --- discovery over a real broker -------------------------------------------------------------


class MqttBus:
    """The Bus an output sees, over a real aiomqtt client."""

    def __init__(self, client: aiomqtt.Client, status: dict[str, Any]) -> None:
        self.client, self._status = client, status

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        await self.client.publish(topic, payload, qos=1, retain=retain)
        return True

    def status(self) -> dict[str, Any]:
        return self._status


async def retained(port: int, pattern: str, quiet: float = 0.5) -> dict[str, bytes]:
    """What the broker keeps under `pattern`, read by a fresh client."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"reader-{id(found)}") as reader:
        await reader.subscribe(pattern, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(quiet):
                async for message in reader.messages:
                    assert isinstance(message.payload, bytes)
                    found[message.topic.value] = message.payload
    return found


@contextlib.asynccontextmanager
async def running_discovery(
    port: int, discovery: Discovery, status: dict[str, Any]
) -> AsyncIterator[MqttBus]:
    """The output wired as the service wires it: its topics delivered to `message`."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"svc-{id(discovery)}") as client:
        bus = MqttBus(client, status)
        await client.subscribe([(topic, 1) for topic in discovery.topics])

        async def deliver() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                discovery.message(message.topic.value, message.payload)

        tasks = [asyncio.create_task(deliver()), asyncio.create_task(discovery.run(bus))]
        await discovery.connected(bus)
        try:
            yield bus
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_discovery_announces_follows_the_integration_and_ha_restarts(broker: int) -> None:
    status = {"instance_id": "abc123", "cameras": ["garden"]}
    crops = {42: b"\xff\xd8face-crop"}
    discovery = Discovery(True, face_crop=crops.get)
    configs = "homeassistant/device/+/config"
    async with running_discovery(broker, discovery, status) as bus:
        await until(lambda: discovery.stats["announced"] >= 2)
        kept = await retained(broker, configs)
        assert set(kept) == {
            "homeassistant/device/face_watchlist_abc123/config",
            "homeassistant/device/face_watchlist_abc123_garden/config",
        }
        assert json.loads(kept["homeassistant/device/face_watchlist_abc123_garden/config"]) == camera_config(
            "abc123", "garden"
        )

        # a camera seen for the first time gets its device; a match its face crop and an event
        async with aiomqtt.Client("127.0.0.1", broker, identifier="ha-like") as ha:
            await ha.subscribe("face_watchlist/cameras/front_door/event", qos=1)
            discovery.notify("decision", match())
            await until(lambda: discovery.stats["announced"] >= 3)
            async with asyncio.timeout(5):
                message = await anext(aiter(ha.messages))
            assert isinstance(message.payload, bytes)
            assert json.loads(message.payload)["event_type"] == "review_needed"
            assert json.loads(message.payload)["person"] == "Jane Doe"
        assert (await retained(broker, face_topic("front_door")))[face_topic("front_door")] == crops[42]

        # the integration is set up: every config is withdrawn
        await bus.client.publish(INTEGRATION_TOPIC, b'{"version": "0.1.0"}', qos=1, retain=True)
        await until(lambda: discovery.stats["withdrawn"] >= 3)
        assert await retained(broker, configs) == {}

        # it is removed again: announced again; HA restarts: announced once more
        await bus.client.publish(INTEGRATION_TOPIC, b"", qos=1, retain=True)
        await until(lambda: discovery.stats["announced"] >= 6)
        assert len(await retained(broker, configs)) == 3
        await bus.client.publish("homeassistant/status", b"online", qos=1)
        await until(lambda: discovery.stats["announced"] >= 9)

    # switched off (a later run): what was announced is removed, and the list with it
    off = Discovery(False)
    async with running_discovery(broker, off, {"instance_id": "abc123", "cameras": []}):
        await until(lambda: off.stats["withdrawn"] >= 3)
        await asyncio.sleep(0.3)
    assert await retained(broker, configs) == {}
    assert await retained(broker, ANNOUNCED_TOPIC) == {}


# --- Frigate sub_label --------------------------------------------------------------------------


def frigate_options(sim: FrigateSimulator, auth: bool, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"url": sim.base_url, "write_sub_label": True, **extra}
    if auth:
        raw |= {"username": "admin", "password": "frigate-sim-password"}
    return load_settings({"frigate": raw}).frigate


class NoBus:
    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {}


@contextlib.asynccontextmanager
async def running(output: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(output.run(NoBus()))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("auth", [True, False], ids=["auth-8971", "internal-5000"])
@pytest.mark.parametrize("recognition", [False, True], ids=["frigate-fr-off", "frigate-fr-on"])
async def test_sub_label_follows_the_review_policy_and_keeps_others_labels(
    auth: bool, recognition: bool
) -> None:
    async with FrigateSimulator(auth=auth, face_recognition=recognition) as sim:
        for name in ("1.0-pending", "2.0-alert", "3.0-frigate", "4.0-rejected"):
            sim.add_event(name, "front_door", _photo())
        sim.events["3.0-frigate"].sub_label = "Bob"  # Frigate's own recognition (or a person) got there first
        output = SubLabel(frigate_options(sim, auth), backoff=FAST)
        async with running(output):
            await until(lambda: output.frigate_recognition is not None)
            assert output.frigate_recognition is recognition
            output.notify("decision", match("1.0-pending", decision_id=1, score=0.55))
            output.notify("decision", match("2.0-alert", decision_id=2, review_state="alert", score=1.7))
            output.notify("decision", match("3.0-frigate", decision_id=3, review_state="alert"))
            output.notify("decision", match("4.0-rejected", decision_id=4, review_state="alert"))
            await until(lambda: output.stats["done"] >= 3)
            assert [(w.event_id, w.sub_label, w.score) for w in sim.sub_label_writes] == [
                ("2.0-alert", "Jane Doe", 1.0),  # score clamped into Frigate's (0, 1]
                ("4.0-rejected", "Jane Doe", 0.61),
            ]
            assert sim.events["3.0-frigate"].sub_label == "Bob"
            assert output.stats["kept_existing"] == 1
            assert sim.events["1.0-pending"].sub_label is None  # waits for a reviewer
            output.notify("review", review("confirmed", "1.0-pending", decision_id=1))
            output.notify("review", review("rejected", "4.0-rejected", decision_id=4))
            output.notify("review", review("rejected", "3.0-frigate", decision_id=3))
            await until(lambda: output.stats["done"] >= 6)
        assert sim.events["1.0-pending"].sub_label == "Jane Doe"
        assert sim.events["1.0-pending"].sub_label_score == 0.55  # the decision's score
        assert sim.events["4.0-rejected"].sub_label is None  # our label taken back
        assert sim.events["3.0-frigate"].sub_label == "Bob"  # not ours: not touched
        if auth:
            assert {w.user for w in sim.sub_label_writes} == {"admin"}


async def test_sub_label_on_every_match_and_overwrite_when_asked() -> None:
    async with FrigateSimulator(auth=True, face_recognition=True) as sim:
        sim.add_event("1.0-a", "front_door", _photo(), sub_label="Bob")
        output = SubLabel(
            frigate_options(sim, True, sub_label_when="match", sub_label_overwrite=True), backoff=FAST
        )
        async with running(output):
            output.notify("decision", match("1.0-a"))
            await until(lambda: output.stats["done"] >= 1)
        assert sim.events["1.0-a"].sub_label == "Jane Doe"


async def test_sub_label_retries_with_backoff_and_reports_what_fails() -> None:
    async with FrigateSimulator(auth=True, token_ttl=0.5) as sim:
        sim.add_event("1.0-a", "front_door", _photo())
        sim.add_event("2.0-b", "front_door", _photo())
        output = SubLabel(frigate_options(sim, True, sub_label_when="match"), backoff=FAST, timeout_s=1)
        async with running(output):
            await asyncio.sleep(0.6)  # the token expires: the client logs in again by itself
            sim.inject("error", "sub_label", times=4)  # beyond the client's own two retries
            output.notify("decision", match("1.0-a"))
            await until(lambda: output.stats["done"] >= 1)
            assert sim.events["1.0-a"].sub_label == "Jane Doe"
            assert output.stats["retries"] >= 1
            sim.users["admin"] = ("changed", "admin")  # a refused login does not mend by waiting
            await asyncio.sleep(0.6)  # the token we hold expires
            output.notify("decision", match("2.0-b"))
            await until(lambda: output.stats["failed"] >= 1)
            assert output.jobs.last_error is not None
            assert "refused" in output.jobs.last_error
            assert "frigate-sim-password" not in output.jobs.last_error


def test_frigate_score_stays_in_range() -> None:
    assert [frigate_score(s) for s in (-0.3, 0.0, 0.42, 1.0, 3, None)] == [0.01, 0.01, 0.42, 1.0, 1.0, 1.0]


def _photo() -> bytes:
    import cv2
    import numpy as np

    return bytes(cv2.imencode(".jpg", np.full((64, 48, 3), 128, np.uint8))[1].tobytes())


# --- Home Assistant Core events -----------------------------------------------------------------


@pytest.fixture
async def home_assistant() -> AsyncIterator[FakeHomeAssistant]:
    ha = FakeHomeAssistant()
    await ha.start()
    yield ha
    await ha.stop()


async def test_ha_events_fire_with_the_decision(home_assistant: FakeHomeAssistant) -> None:
    output = HaEvents(
        home_assistant.url, home_assistant.token, evidence_base_url="http://fw.local:8099", backoff=FAST
    )
    async with running(output):
        output.notify("decision", match())
        output.notify("decision", {"result": "no_face", "camera": "front_door", "event_id": "9"})
        output.notify("review", review("confirmed"))
        await until(lambda: len(home_assistant.fired) >= 2)
    (kind, first), (_, second) = home_assistant.fired
    assert kind == EVENT_MATCH
    assert first["event_type"] == "review_needed"
    assert second["event_type"] == "match"
    assert {k: first[k] for k in ("camera", "person", "list", "score", "event_id", "review_state")} == {
        "camera": "front_door",
        "person": "Jane Doe",
        "list": "registry",
        "score": 0.61,
        "event_id": "1.0-abc",
        "review_state": "pending_review",
    }
    assert first["evidence_url"] == "http://fw.local:8099/api/decisions/42/face.jpg"
    assert second["reviewer"] == "alice"
    assert "long-lived-token" not in repr(output)


async def test_ha_events_retry_skip_for_the_integration_and_report(home_assistant: FakeHomeAssistant) -> None:
    output = HaEvents(home_assistant.url, home_assistant.token, backoff=FAST, timeout_s=2)
    async with running(output):
        home_assistant.fail_next = 2
        output.notify("decision", match())
        await until(lambda: len(home_assistant.fired) == 1)
        assert output.stats["retries"] == 2
        output.message(INTEGRATION_TOPIC, b'{"version": "1"}')  # it fires its own events
        output.notify("decision", match())
        assert output.stats["skipped_integration"] == 1
        output.message(INTEGRATION_TOPIC, b"")
    wrong = HaEvents(home_assistant.url, "wrong-token", backoff=FAST)
    async with running(wrong):
        wrong.notify("decision", match())
        await until(lambda: wrong.stats["failed"] == 1)
    assert wrong.stats["retries"] == 0  # a refused token is not retried
    await home_assistant.stop()
    down = HaEvents(home_assistant.url, home_assistant.token, backoff=FAST, timeout_s=1)
    async with running(down):
        started = asyncio.get_running_loop().time()
        down.notify("decision", match())  # returns at once although HA is gone
        assert asyncio.get_running_loop().time() - started < 0.05
        await until(lambda: down.stats["failed"] == 1)
    assert down.stats["retries"] == FAST.attempts - 1


# --- what the settings build ---------------------------------------------------------------------


def test_build_outputs_from_the_settings() -> None:
    names = [o.name for o in build_outputs(load_settings({}))]
    assert names == ["discovery"]
    settings = load_settings(
        {
            "frigate": {"write_sub_label": True},
            "homeassistant": {"url": "http://supervisor/core", "token": "t"},
        }
    )
    outputs = build_outputs(settings)
    assert [o.name for o in outputs] == ["discovery", "sub_label", "ha_events"]
    assert isinstance(outputs[2], HaEvents)
    assert outputs[2].url == "http://supervisor/core/api"
    assert [o.name for o in build_outputs(load_settings({"outputs": {"ha_events": False}}))] == ["discovery"]
