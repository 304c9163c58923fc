"""Diagnostics: the entry and the push state, with the token, URLs and people's names redacted."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant

from . import FaceWatchlistConfigEntry

TO_REDACT = {CONF_TOKEN, CONF_URL, "person", "person_id", "display_name", "external_id", "event_id"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry
) -> dict[str, Any]:
    state = entry.runtime_data.coordinator.data
    return {
        "entry": {"data": async_redact_data(dict(entry.data), TO_REDACT), "options": dict(entry.options)},
        "online": state.online,
        "status": dataclasses.asdict(state.status),
        "cameras": {
            camera: async_redact_data(dataclasses.asdict(decision), TO_REDACT)
            for camera, decision in state.cameras.items()
        },
        "tracked_people": len(state.people),  # how many, never who
    }
