"""Face Watchlist for Frigate: who was recognised where, reviews, enrolment and automations."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TypeAlias

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_TOKEN, CONF_URL, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady, HomeAssistantError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType
from homeassistant.loader import async_get_integration

from .api import FaceWatchlistClient, FaceWatchlistError, InvalidAuth
from .const import DOMAIN, NAME, TOPIC_INTEGRATION
from .coordinator import FaceWatchlistCoordinator
from .models import Status
from .services import async_setup_services
from .views import EvidenceView

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.BINARY_SENSOR, Platform.EVENT, Platform.IMAGE, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


@dataclass(slots=True)
class FaceWatchlistData:
    """What a loaded entry keeps (entry.runtime_data)."""

    client: FaceWatchlistClient
    coordinator: FaceWatchlistCoordinator


FaceWatchlistConfigEntry: TypeAlias = ConfigEntry[FaceWatchlistData]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions and the evidence view once, whatever the number of entries."""
    async_setup_services(hass)
    hass.http.register_view(EvidenceView())
    return True


async def async_setup_entry(hass: HomeAssistant, entry: FaceWatchlistConfigEntry) -> bool:
    """Connect to the service, then follow its MQTT outputs."""
    client = FaceWatchlistClient(async_get_clientsession(hass), entry.data[CONF_URL], entry.data[CONF_TOKEN])
    try:
        status = Status.from_dict(await client.status())
    except InvalidAuth as err:
        raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth") from err
    except (FaceWatchlistError, ValueError) as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"url": client.url, "error": str(err)},
        ) from err

    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_unavailable")

    # Tell the service an integration is set up, so it withdraws its own MQTT discovery entities
    # (same entity ids for the service-wide sensors); before ours are created, to let it go first.
    integration = await async_get_integration(hass, DOMAIN)
    await mqtt.async_publish(
        hass, TOPIC_INTEGRATION, json.dumps({"version": str(integration.version)}), qos=1, retain=True
    )

    service_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, status.instance_id)},
        entry_type=dr.DeviceEntryType.SERVICE,
        manufacturer=NAME,
        model=f"Model pack {status.pack}" if status.pack else None,
        name=entry.title,
        sw_version=status.version,
        configuration_url=client.url,
    )
    coordinator = FaceWatchlistCoordinator(hass, entry, client, status, service_device.id)
    entry.runtime_data = FaceWatchlistData(client=client, coordinator=coordinator)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    for unsubscribe in await coordinator.async_subscribe():
        entry.async_on_unload(unsubscribe)

    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: FaceWatchlistConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: FaceWatchlistConfigEntry) -> bool:
    """Stop following the service; clear the retained integration marker if it was the last."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    others = [e for e in hass.config_entries.async_loaded_entries(DOMAIN) if e.entry_id != entry.entry_id]
    published = getattr(entry, "runtime_data", None) is not None  # set up far enough to publish
    if unloaded and published and not others:
        try:
            await mqtt.async_publish(hass, TOPIC_INTEGRATION, "", qos=1, retain=True)
        except HomeAssistantError as err:  # MQTT itself being unloaded: the marker stays
            _LOGGER.warning("Could not clear %s: %s", TOPIC_INTEGRATION, err)
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a camera device the service no longer lists."""
    coordinator = entry.runtime_data.coordinator
    if device.id == coordinator.service_device_id:
        return False
    for camera, device_id in list(coordinator.camera_devices.items()):
        if device_id == device.id:
            if camera in coordinator.data.status.cameras:
                return False
            del coordinator.camera_devices[camera]
            coordinator.data.cameras.pop(camera, None)
            coordinator.data.events.pop(camera, None)
    return True
