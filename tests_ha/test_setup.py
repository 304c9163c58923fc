"""Setup, unload, reload, and the service being unreachable at start and later."""

from __future__ import annotations

import json
from unittest.mock import MagicMock

import pytest
from homeassistant.components.mqtt.const import MQTT_CONNECTION_STATE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_send
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_mqtt_message

from custom_components.face_watchlist.const import TOPIC_INTEGRATION

from .conftest import entity_id
from .fake_service import FakeService, error, payload, status_body


async def test_setup_creates_entities_and_marks_integration(
    hass: HomeAssistant, loaded: MockConfigEntry, mqtt: MagicMock
) -> None:
    assert loaded.state is ConfigEntryState.LOADED
    assert hass.states.get(entity_id(hass, "sensor", "pending_reviews")).state == "1"
    assert hass.states.get(entity_id(hass, "sensor", "matches_today")).state == "2"
    people = hass.states.get(entity_id(hass, "sensor", "people"))
    assert people.state == "52"
    assert people.attributes["lists"] == {"registry": 40, "staff": 12}
    assert hass.states.get(entity_id(hass, "sensor", "model_pack")).state == "opencv-zoo"
    assert hass.states.get(entity_id(hass, "sensor", "health")).state == "ok"
    # the camera named in the status has its entities before any decision
    alert = hass.states.get(entity_id(hass, "binary_sensor", "front_door_watchlist_alert"))
    assert alert.state == "off"
    assert alert.attributes["friendly_name"] == "Front Door Watchlist alert"  # device + translated name
    assert alert.attributes["device_class"] == "safety"
    assert hass.states.get(entity_id(hass, "sensor", "front_door_last_decision")).state == "unknown"
    published = [c for c in mqtt.async_publish.call_args_list if c.args[0] == TOPIC_INTEGRATION]
    assert published
    assert json.loads(published[-1].args[1]) == {"version": "0.1.0"}
    assert published[-1].args[2:] == (1, True)


async def test_unload_clears_marker_and_reload(
    hass: HomeAssistant, loaded: MockConfigEntry, mqtt: MagicMock
) -> None:
    mqtt.async_publish.reset_mock()
    assert await hass.config_entries.async_unload(loaded.entry_id)
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.NOT_LOADED
    cleared = [c.args for c in mqtt.async_publish.call_args_list if c.args[0] == TOPIC_INTEGRATION]
    assert cleared == [(TOPIC_INTEGRATION, "", 1, True)]
    assert await hass.config_entries.async_setup(loaded.entry_id)
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_reload(loaded.entry_id)
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.LOADED


async def test_unreachable_at_start_is_not_ready(
    hass: HomeAssistant, mqtt: MagicMock, entry: MockConfigEntry, service: FakeService
) -> None:
    assert service.server is not None
    await service.server.close()
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_bad_status_at_start_is_not_ready(
    hass: HomeAssistant, mqtt: MagicMock, entry: MockConfigEntry, service: FakeService
) -> None:
    service.fail["status"] = error(500, "boom", "internal")
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_token_refused_at_start_starts_reauth(
    hass: HomeAssistant, mqtt: MagicMock, entry: MockConfigEntry, service: FakeService
) -> None:
    service.fail["status"] = error(401, "unauthorized", "bad token")
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress()
    assert [f["context"]["source"] for f in flows] == ["reauth"]


async def test_service_and_frigate_going_down_and_back(
    hass: HomeAssistant, loaded: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    alert = entity_id(hass, "binary_sensor", "front_door_watchlist_alert")
    pending = entity_id(hass, "sensor", "pending_reviews")
    health = entity_id(hass, "sensor", "health")

    async_fire_mqtt_message(hass, "face_watchlist/available", "offline")
    assert hass.states.get(alert).state == STATE_UNAVAILABLE
    assert hass.states.get(pending).state == STATE_UNAVAILABLE
    assert hass.states.get(health).state == "offline"  # health itself stays available
    async_fire_mqtt_message(hass, "face_watchlist/available", "offline")  # no second log line
    assert caplog.text.count("service is offline") == 1

    async_fire_mqtt_message(hass, "face_watchlist/available", "online")
    assert hass.states.get(alert).state == "off"
    assert "back online" in caplog.text

    async_fire_mqtt_message(hass, "face_watchlist/status", payload(status_body(frigate="down")))
    assert hass.states.get(alert).state == STATE_UNAVAILABLE  # camera entities need Frigate
    assert hass.states.get(pending).state == "1"  # service-wide ones do not
    assert hass.states.get(health).state == "frigate_down"
    async_fire_mqtt_message(hass, "face_watchlist/status", payload(status_body(frigate="down")))
    assert caplog.text.count("Frigate is down") == 1
    async_fire_mqtt_message(hass, "face_watchlist/status", payload(status_body(mqtt="disconnected")))
    assert hass.states.get(alert).state == "off"
    assert hass.states.get(health).state == "mqtt_down"
    assert "Frigate is back" in caplog.text


async def test_broker_disconnection_makes_entities_unavailable(
    hass: HomeAssistant, loaded: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    pending = entity_id(hass, "sensor", "pending_reviews")
    health = entity_id(hass, "sensor", "health")
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, False)
    assert hass.states.get(pending).state == STATE_UNAVAILABLE
    assert hass.states.get(health).state == "offline"
    assert "MQTT broker disconnected" in caplog.text
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, True)
    assert hass.states.get(pending).state == "1"
    assert hass.states.get(health).state == "ok"


async def test_no_entity_polls(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    from homeassistant.helpers.entity_platform import async_get_platforms

    entities = [e for p in async_get_platforms(hass, "face_watchlist") for e in p.entities.values()]
    assert len(entities) == 10  # 5 enabled service sensors, 5 entities of the front_door camera
    assert [e.entity_id for e in entities if e.should_poll] == []
    assert {p.domain for p in async_get_platforms(hass, "face_watchlist")} == {
        "binary_sensor",
        "event",
        "image",
        "sensor",
    }
