"""Fixtures: the fake service on a local port, MQTT mocked by HA's own fixture, a set-up entry."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any
from unittest.mock import MagicMock

import pytest
from aiohttp.test_utils import TestServer
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

# Import the package before the hass fixture runs, so `custom_components` is this repo's folder.
import custom_components.face_watchlist  # noqa: F401
from custom_components.face_watchlist.const import DOMAIN

from .fake_service import INSTANCE_ID, TOKEN, FakeService


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load integrations from custom_components/."""


@pytest.fixture
async def service(socket_enabled: None) -> AsyncGenerator[FakeService]:
    fake = FakeService()
    fake.server = TestServer(fake.app(), host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
async def mqtt(hass: HomeAssistant, mqtt_mock: MagicMock) -> AsyncGenerator[MagicMock]:
    """HA's MQTT integration on a mocked paho client; unloaded at the end so that its periodic
    timer does not outlive the test."""
    yield mqtt_mock
    for config_entry in hass.config_entries.async_entries(DOMAIN) + hass.config_entries.async_entries("mqtt"):
        await hass.config_entries.async_unload(config_entry.entry_id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))  # MQTT's cooldown timers
    await hass.async_block_till_done()


@pytest.fixture
def entry(hass: HomeAssistant, service: FakeService) -> MockConfigEntry:
    config_entry = MockConfigEntry(
        domain=DOMAIN,
        title="Face Watchlist",
        unique_id=INSTANCE_ID,
        data={CONF_URL: service.url, CONF_TOKEN: TOKEN},
    )
    config_entry.add_to_hass(hass)
    return config_entry


@pytest.fixture
async def loaded(hass: HomeAssistant, mqtt: MagicMock, entry: MockConfigEntry) -> MockConfigEntry:
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def entity_id(hass: HomeAssistant, platform: str, unique_suffix: str) -> str:
    from homeassistant.helpers import entity_registry as er

    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{INSTANCE_ID}_{unique_suffix}")
    assert found is not None, f"no {platform} entity {unique_suffix}"
    return found


def attrs(hass: HomeAssistant, eid: str) -> dict[str, Any]:
    state = hass.states.get(eid)
    assert state is not None
    return dict(state.attributes)


def device_for(hass: HomeAssistant, identifier: str) -> Any:
    """The device with this identifier (without the lookup HA 2026 deprecates)."""
    from homeassistant.helpers import device_registry as dr

    registry = dr.async_get(hass)
    for config_entry in hass.config_entries.async_entries(DOMAIN):
        for device in dr.async_entries_for_config_entry(registry, config_entry.entry_id):
            if (DOMAIN, identifier) in device.identifiers:
                return device
    return None
