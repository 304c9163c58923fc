"""MQTT messages drive entity state in the same loop turn; events for automations."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_mqtt_message,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.face_watchlist.const import EVENT_MATCH

from .conftest import attrs, device_for, entity_id
from .fake_service import FACE_JPEG, INSTANCE_ID, SNAPSHOT_JPEG, FakeService, decision, payload, status_body

EVENTS = "face_watchlist/events"


async def test_decision_reaches_state_in_same_loop_turn(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    last = entity_id(hass, "sensor", "front_door_last_decision")
    alert = entity_id(hass, "binary_sensor", "front_door_watchlist_alert")
    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    # no async_block_till_done: the state is written by the MQTT callback itself
    state = hass.states.get(last)
    assert state.state == "match"
    assert state.attributes["person"] == "Jane Doe"
    assert state.attributes["list"] == "registry"
    assert state.attributes["score"] == 0.61
    assert state.attributes["event_id"] == "1718000000.123-abc"
    assert state.attributes["thumbnail_url"] == f"/api/face_watchlist/{loaded.entry_id}/decisions/42/face.jpg"
    assert hass.states.get(alert).state == "on"


async def test_event_entity_and_bus_event(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    bus = async_capture_events(hass, EVENT_MATCH)
    face = entity_id(hass, "event", "front_door_face")
    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    state = hass.states.get(face)
    assert state.attributes["event_type"] == "review_needed"
    assert state.attributes["decision_id"] == 42
    async_fire_mqtt_message(hass, EVENTS, payload(decision(result="unknown", event_id="e2")))
    assert hass.states.get(face).attributes["event_type"] == "unknown"
    async_fire_mqtt_message(hass, EVENTS, payload(decision(result="no_face", event_id="e3")))
    assert hass.states.get(face).attributes["event_type"] == "unknown"  # no_face is not an event
    async_fire_mqtt_message(
        hass, EVENTS, payload(decision(review_state="alert", event_id="e4", decision_id=43))
    )
    assert hass.states.get(face).attributes["event_type"] == "match"
    await hass.async_block_till_done()

    device = device_for(hass, f"{INSTANCE_ID}_camera_front_door")
    assert device is not None
    assert [e.data["review_state"] for e in bus] == ["pending_review", "alert"]  # matches only
    assert bus[0].data["device_id"] == device.id
    assert bus[0].data["entity_id"] == face
    assert bus[0].data["face_url"].endswith("/decisions/42/face.jpg")
    assert bus[0].data["snapshot_url"].endswith("/decisions/42/snapshot.jpg")


async def test_retained_messages_set_state_without_events(
    hass: HomeAssistant, loaded: MockConfigEntry
) -> None:
    bus = async_capture_events(hass, EVENT_MATCH)
    async_fire_mqtt_message(hass, "face_watchlist/cameras/front_door/last", payload(decision()), retain=True)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id(hass, "sensor", "front_door_last_decision")).state == "match"
    assert hass.states.get(entity_id(hass, "event", "front_door_face")).state == STATE_UNKNOWN
    assert hass.states.get(entity_id(hass, "binary_sensor", "front_door_watchlist_alert")).state == "off"
    assert bus == []
    # an older retained message does not overwrite a newer decision
    async_fire_mqtt_message(
        hass, "face_watchlist/cameras/front_door/last", payload(decision(result="unknown", timestamp=1.0))
    )
    assert hass.states.get(entity_id(hass, "sensor", "front_door_last_decision")).state == "match"


async def test_new_camera_gets_entities_and_its_first_event(
    hass: HomeAssistant, loaded: MockConfigEntry
) -> None:
    bus = async_capture_events(hass, EVENT_MATCH)
    async_fire_mqtt_message(hass, EVENTS, payload(decision(camera="gym hall")))
    await hass.async_block_till_done()
    face = entity_id(hass, "event", "gym hall_face")
    assert hass.states.get(face).attributes["event_type"] == "review_needed"
    assert hass.states.get(entity_id(hass, "sensor", "gym hall_last_decision")).state == "match"
    device = device_for(hass, f"{INSTANCE_ID}_camera_gym hall")
    assert device is not None
    assert device.via_device_id is not None
    assert bus[0].data["device_id"] == device.id


async def test_alert_turns_off_after_delay_and_on_rejection(
    hass: HomeAssistant, loaded: MockConfigEntry
) -> None:
    alert = entity_id(hass, "binary_sensor", "front_door_watchlist_alert")
    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    assert hass.states.get(alert).state == "on"
    assert hass.states.get(alert).attributes["person"] == "Jane Doe"
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await hass.async_block_till_done()
    assert hass.states.get(alert).state == "off"

    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    assert hass.states.get(alert).state == "on"
    review = {
        "decision_id": 42,
        "event_id": "1718000000.123-abc",
        "camera": "front_door",
        "person": "Jane Doe",
        "person_id": 7,
        "list": "registry",
        "review_state": "rejected",
        "reviewer": "office",
        "timestamp": 1718000100.0,
    }
    async_fire_mqtt_message(hass, "face_watchlist/reviews", payload(review))
    assert hass.states.get(alert).state == "off"
    last = hass.states.get(entity_id(hass, "sensor", "front_door_last_decision"))
    assert last.attributes["review_state"] == "rejected"
    # a known-list match never raises the watchlist alert
    async_fire_mqtt_message(hass, EVENTS, payload(decision(list_kind="known", decision_id=50)))
    assert hass.states.get(alert).state == "off"


async def test_confirmed_review_fires_match(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    bus = async_capture_events(hass, EVENT_MATCH)
    face = entity_id(hass, "event", "front_door_face")
    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    review = {"decision_id": 42, "camera": "front_door", "review_state": "confirmed", "reviewer": "office"}
    async_fire_mqtt_message(hass, "face_watchlist/reviews", payload(review))
    assert hass.states.get(face).attributes["event_type"] == "match"
    assert hass.states.get(face).attributes["review_state"] == "confirmed"
    # the review of an older decision is rebuilt from the review message
    older = {
        "decision_id": 7,
        "camera": "front_door",
        "review_state": "confirmed",
        "person": "Old Case",
        "event_id": "old",
    }
    async_fire_mqtt_message(hass, "face_watchlist/reviews", payload(older))
    await hass.async_block_till_done()
    rejected = {"decision_id": 8, "camera": "front_door", "review_state": "rejected", "reviewer": "office"}
    async_fire_mqtt_message(hass, "face_watchlist/reviews", payload(rejected))
    await hass.async_block_till_done()
    assert hass.states.get(face).attributes["decision_id"] == 7  # a rejection is no event-entity event
    assert [e.data["review_state"] for e in bus] == ["pending_review", "confirmed", "confirmed", "rejected"]
    assert [e.data["event_type"] for e in bus] == ["review_needed", "match", "match", "rejected"]
    assert bus[0].data["evidence_url"] == bus[0].data["face_url"]
    assert bus[1].data["reviewer"] == "office"
    assert bus[2].data["person"] == "Old Case"
    assert bus[2].data["face_url"].endswith("/decisions/7/face.jpg")


async def test_bad_messages_are_ignored(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    last = entity_id(hass, "sensor", "front_door_last_decision")
    pending = entity_id(hass, "sensor", "pending_reviews")
    for bad in ("not json", "[1, 2]", payload({"camera": "front_door"}), payload(decision(result="maybe"))):
        async_fire_mqtt_message(hass, EVENTS, bad)
        async_fire_mqtt_message(hass, "face_watchlist/cameras/front_door/last", bad)
        async_fire_mqtt_message(hass, "face_watchlist/reviews", bad)
        async_fire_mqtt_message(hass, "face_watchlist/status", bad)
    async_fire_mqtt_message(
        hass, "face_watchlist/status", payload(status_body(instance_id="other", pending_reviews=9))
    )
    await hass.async_block_till_done()
    assert hass.states.get(last).state == STATE_UNKNOWN
    assert hass.states.get(pending).state == "1"


async def test_status_updates_service_sensors(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    async_fire_mqtt_message(
        hass,
        "face_watchlist/status",
        payload(
            status_body(
                pending_reviews=4,
                matches_today=0,
                people_per_list={"registry": 41},
                cameras=["front_door", "yard"],
                pack="buffalo_l",
            )
        ),
    )
    assert hass.states.get(entity_id(hass, "sensor", "pending_reviews")).state == "4"
    assert hass.states.get(entity_id(hass, "sensor", "matches_today")).state == "0"
    assert hass.states.get(entity_id(hass, "sensor", "people")).state == "41"
    assert hass.states.get(entity_id(hass, "sensor", "model_pack")).state == "buffalo_l"
    await hass.async_block_till_done()
    assert hass.states.get(entity_id(hass, "sensor", "yard_last_decision")) is not None
    # noisy diagnostics are registered but disabled by default
    queue = er.async_get(hass).async_get(entity_id(hass, "sensor", "queue_depth"))
    assert queue is not None
    assert queue.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert queue.entity_category is not None


async def test_offline_then_status_brings_back(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    pending = entity_id(hass, "sensor", "pending_reviews")
    async_fire_mqtt_message(hass, "face_watchlist/available", "offline")
    assert hass.states.get(pending).state == STATE_UNAVAILABLE
    async_fire_mqtt_message(hass, "face_watchlist/status", payload(status_body()))
    assert hass.states.get(pending).state == "1"


async def test_images_fetch_evidence(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, hass_client: ClientSessionGenerator
) -> None:
    face = entity_id(hass, "image", "front_door_last_face")
    snapshot = entity_id(hass, "image", "front_door_last_snapshot")
    client = await hass_client()
    # no match yet: nothing to show
    assert (await client.get(f"/api/image_proxy/{face}")).status != HTTPStatus.OK
    async_fire_mqtt_message(hass, EVENTS, payload(decision()))
    await hass.async_block_till_done()
    assert hass.states.get(face).state != STATE_UNKNOWN  # the image's timestamp
    assert attrs(hass, face)["decision_id"] == 42
    response = await client.get(f"/api/image_proxy/{face}")
    assert response.status == HTTPStatus.OK
    assert await response.read() == FACE_JPEG
    response = await client.get(f"/api/image_proxy/{face}")  # cached: no second fetch
    assert await response.read() == FACE_JPEG
    assert [c for c in service.calls if c[0] == "evidence"] == [("evidence", {"id": "42", "kind": "face"})]
    response = await client.get(f"/api/image_proxy/{snapshot}")
    assert await response.read() == SNAPSHOT_JPEG
    # evidence purged by retention: the image is empty, not an error in the log
    async_fire_mqtt_message(hass, EVENTS, payload(decision(decision_id=99, event_id="e9")))
    await hass.async_block_till_done()
    assert (await client.get(f"/api/image_proxy/{face}")).status != HTTPStatus.OK


async def test_evidence_view(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService, hass_client: ClientSessionGenerator
) -> None:
    client = await hass_client()
    base = f"/api/face_watchlist/{loaded.entry_id}/decisions"
    response = await client.get(f"{base}/42/face.jpg")
    assert response.status == HTTPStatus.OK
    assert response.content_type == "image/jpeg"
    assert await response.read() == FACE_JPEG
    assert (await client.get(f"{base}/42/snapshot.jpg")).status == HTTPStatus.OK
    assert (await client.get(f"{base}/41/face.jpg")).status == HTTPStatus.NOT_FOUND
    assert (await client.get(f"{base}/42/other.jpg")).status == HTTPStatus.NOT_FOUND
    assert (await client.get("/api/face_watchlist/nope/decisions/42/face.jpg")).status == HTTPStatus.NOT_FOUND
    from .fake_service import error

    service.fail["evidence"] = error(500, "boom", "broken")
    assert (await client.get(f"{base}/42/face.jpg")).status == HTTPStatus.BAD_GATEWAY
    assert service.server is not None
    await service.server.close()
    assert (await client.get(f"{base}/42/face.jpg")).status == HTTPStatus.BAD_GATEWAY


async def test_evidence_view_needs_auth(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_client_no_auth: ClientSessionGenerator
) -> None:
    client = await hass_client_no_auth()
    response = await client.get(f"/api/face_watchlist/{loaded.entry_id}/decisions/42/face.jpg")
    assert response.status == HTTPStatus.UNAUTHORIZED


async def test_remove_stale_camera_device(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    from custom_components.face_watchlist import async_remove_config_entry_device

    async_fire_mqtt_message(hass, EVENTS, payload(decision(camera="old_cam")))
    await hass.async_block_till_done()
    service_device = device_for(hass, INSTANCE_ID)
    front = device_for(hass, f"{INSTANCE_ID}_camera_front_door")
    old = device_for(hass, f"{INSTANCE_ID}_camera_old_cam")
    assert service_device
    assert front
    assert old
    assert not await async_remove_config_entry_device(hass, loaded, service_device)
    assert not await async_remove_config_entry_device(hass, loaded, front)  # still listed by the service
    assert await async_remove_config_entry_device(hass, loaded, old)
    assert "old_cam" not in loaded.runtime_data.coordinator.data.cameras


async def test_manual_refresh_reads_status(
    hass: HomeAssistant, loaded: MockConfigEntry, service: FakeService
) -> None:
    await hass.async_block_till_done()
    pending = entity_id(hass, "sensor", "pending_reviews")
    service.status = status_body(pending_reviews=6)
    coordinator = loaded.runtime_data.coordinator
    await coordinator.async_refresh()
    assert hass.states.get(pending).state == "6"
    assert service.server is not None
    await service.server.close()
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
