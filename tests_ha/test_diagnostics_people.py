"""Diagnostics redaction, and the opt-in per-person last-seen sensors."""

from __future__ import annotations

import json
from unittest.mock import MagicMock

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_mqtt_message

from custom_components.face_watchlist.const import CONF_TRACK_PEOPLE
from custom_components.face_watchlist.diagnostics import async_get_config_entry_diagnostics

from .conftest import entity_id
from .fake_service import TOKEN, decision, payload


async def test_diagnostics_redacts(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    async_fire_mqtt_message(hass, "face_watchlist/events", payload(decision()))
    result = await async_get_config_entry_diagnostics(hass, loaded)
    text = json.dumps(result)
    assert TOKEN not in text
    assert "Jane Doe" not in text
    assert "1718000000.123-abc" not in text
    assert loaded.data["url"] not in text
    assert result["entry"]["data"] == {"url": "**REDACTED**", "token": "**REDACTED**"}
    assert result["cameras"]["front_door"]["person"] == "**REDACTED**"
    assert result["cameras"]["front_door"]["score"] == 0.61
    assert result["status"]["pack"] == "opencv-zoo"
    assert result["online"] is True


async def test_people_not_tracked_by_default(hass: HomeAssistant, loaded: MockConfigEntry) -> None:
    async_fire_mqtt_message(hass, "face_watchlist/people/7/last", payload(decision()))
    async_fire_mqtt_message(hass, "face_watchlist/events", payload(decision()))
    await hass.async_block_till_done()
    assert [s for s in hass.states.async_entity_ids("sensor") if "last_seen" in s] == []


async def test_people_last_seen_when_enabled(
    hass: HomeAssistant, mqtt: MagicMock, entry: MockConfigEntry
) -> None:
    hass.config_entries.async_update_entry(entry, options={CONF_TRACK_PEOPLE: True})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    async_fire_mqtt_message(hass, "face_watchlist/people/7/last", payload(decision()))
    await hass.async_block_till_done()
    seen = entity_id(hass, "sensor", "person_7_last_seen")
    state = hass.states.get(seen)
    assert state.state == "2024-06-10T06:13:21+00:00"
    assert state.attributes["camera"] == "front_door"
    assert state.attributes["friendly_name"].endswith("Jane Doe last seen")
    # a later live match moves the person
    async_fire_mqtt_message(
        hass,
        "face_watchlist/events",
        payload(decision(camera="yard", timestamp=1718003601.5, decision_id=50)),
    )
    assert hass.states.get(seen).attributes["camera"] == "yard"
    async_fire_mqtt_message(hass, "face_watchlist/people/8/last", payload(decision(result="unknown")))
    async_fire_mqtt_message(hass, "face_watchlist/people/9/last", "garbage")
    await hass.async_block_till_done()
    assert len([s for s in hass.states.async_entity_ids("sensor") if "last_seen" in s]) == 1
