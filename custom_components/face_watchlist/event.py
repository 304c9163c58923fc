"""Event entity per camera (match / unknown / review_needed), the hook for automations."""

from __future__ import annotations

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import FaceWatchlistConfigEntry
from .const import EVENT_TYPE_MATCH, EVENT_TYPE_REVIEW_NEEDED, EVENT_TYPE_UNKNOWN
from .coordinator import FaceWatchlistCoordinator
from .entity import FaceWatchlistCameraEntity, add_camera_entities

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    coordinator = entry.runtime_data.coordinator
    entry.async_on_unload(
        add_camera_entities(coordinator, async_add_entities, lambda camera: [FaceEvent(coordinator, camera)])
    )


class FaceEvent(FaceWatchlistCameraEntity, EventEntity):
    """Fires once per live decision on the camera; retained messages never fire it."""

    def __init__(self, coordinator: FaceWatchlistCoordinator, camera: str) -> None:
        super().__init__(coordinator, camera, "face")
        self._attr_event_types = [EVENT_TYPE_MATCH, EVENT_TYPE_UNKNOWN, EVENT_TYPE_REVIEW_NEEDED]
        event = coordinator.data.events.get(camera)
        # A camera first heard of through a live event gets that event once it is added.
        self._seen_seq = event.seq - 1 if event else 0

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self._fire_new()

    def _fire_new(self) -> bool:
        event = self.coordinator.data.events.get(self.camera)
        if event is None or event.seq <= self._seen_seq:
            return False
        self._seen_seq = event.seq
        self._trigger_event(event.event_type, self.coordinator.decision_attributes(event.decision))
        return True

    @callback
    def _handle_coordinator_update(self) -> None:
        self._fire_new()
        super()._handle_coordinator_update()
