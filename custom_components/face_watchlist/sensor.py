"""Sensors: the last decision per camera, the service's counters and health, people last seen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import FaceWatchlistConfigEntry
from .coordinator import FaceWatchlistCoordinator, FaceWatchlistState
from .entity import FaceWatchlistCameraEntity, FaceWatchlistEntity, add_camera_entities
from .models import RESULTS

PARALLEL_UPDATES = 0

HEALTH_OPTIONS = ["ok", "frigate_down", "mqtt_down", "offline"]


def _health(state: FaceWatchlistState) -> str:
    if not state.reachable:
        return "offline"
    if state.status.mqtt == "disconnected":
        return "mqtt_down"
    return "ok" if state.frigate_up else "frigate_down"


@dataclass(frozen=True, kw_only=True)
class ServiceSensorDescription(SensorEntityDescription):
    """A sensor of the service device, read from the push state."""

    value: Callable[[FaceWatchlistState], str | int | None]
    attributes: Callable[[FaceWatchlistState], dict[str, Any]] | None = None
    always_available: bool = False


SERVICE_SENSORS: tuple[ServiceSensorDescription, ...] = (
    ServiceSensorDescription(
        key="pending_reviews",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda s: s.status.pending_reviews,
    ),
    ServiceSensorDescription(
        key="matches_today",
        state_class=SensorStateClass.TOTAL_INCREASING,  # back to 0 at midnight is a reset
        value=lambda s: s.status.matches_today,
    ),
    ServiceSensorDescription(
        key="people",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda s: sum(s.status.people_per_list.values()),
        attributes=lambda s: {"lists": dict(s.status.people_per_list)},
    ),
    ServiceSensorDescription(
        key="model_pack",
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda s: s.status.pack,
    ),
    ServiceSensorDescription(
        key="health",
        device_class=SensorDeviceClass.ENUM,
        options=HEALTH_OPTIONS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=_health,
        always_available=True,
    ),
    ServiceSensorDescription(
        key="queue_depth",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,  # changes with every snapshot: noisy
        value=lambda s: s.status.queue_depth,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    coordinator = entry.runtime_data.coordinator
    async_add_entities(ServiceSensor(coordinator, description) for description in SERVICE_SENSORS)
    entry.async_on_unload(
        add_camera_entities(
            coordinator, async_add_entities, lambda camera: [LastDecision(coordinator, camera)]
        )
    )
    if coordinator.track_people:
        entry.async_on_unload(_add_people(coordinator, async_add_entities))


def _add_people(
    coordinator: FaceWatchlistCoordinator, async_add_entities: AddEntitiesCallback
) -> Callable[[], None]:
    added: set[int] = set()

    @callback
    def _add_new() -> None:
        new = sorted(set(coordinator.data.people) - added)
        if new:
            added.update(new)
            async_add_entities(PersonLastSeen(coordinator, person_id) for person_id in new)

    _add_new()
    return coordinator.async_add_listener(_add_new)


class ServiceSensor(FaceWatchlistEntity, SensorEntity):
    entity_description: ServiceSensorDescription

    def __init__(self, coordinator: FaceWatchlistCoordinator, description: ServiceSensorDescription) -> None:
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        return self.entity_description.always_available or super().available

    @property
    def native_value(self) -> str | int | None:
        return self.entity_description.value(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        if self.entity_description.attributes is None:
            return None
        return self.entity_description.attributes(self.coordinator.data)


class LastDecision(FaceWatchlistCameraEntity, SensorEntity):
    """The camera's last decision; who, which list, the score and the evidence as attributes."""

    _attr_device_class = SensorDeviceClass.ENUM

    def __init__(self, coordinator: FaceWatchlistCoordinator, camera: str) -> None:
        super().__init__(coordinator, camera, "last_decision")
        self._attr_options = list(RESULTS)

    @property
    def native_value(self) -> str | None:
        decision = self.decision
        return decision.result if decision else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        decision = self.decision
        if decision is None:
            return None
        attributes = self.coordinator.decision_attributes(decision)
        attributes["thumbnail_url"] = attributes["face_url"]
        return attributes


class PersonLastSeen(FaceWatchlistEntity, SensorEntity):
    """When and where an enrolled person was last matched (only with the people option on)."""

    _attr_device_class = SensorDeviceClass.TIMESTAMP

    def __init__(self, coordinator: FaceWatchlistCoordinator, person_id: int) -> None:
        super().__init__(coordinator, f"person_{person_id}_last_seen")
        self._attr_translation_key = "person_last_seen"
        self.person_id = person_id
        decision = coordinator.data.people[person_id]
        self._attr_translation_placeholders = {"person": decision.person or f"#{person_id}"}

    @property
    def native_value(self) -> datetime | None:
        decision = self.coordinator.data.people.get(self.person_id)
        return datetime.fromtimestamp(decision.timestamp, UTC) if decision and decision.timestamp else None

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        decision = self.coordinator.data.people.get(self.person_id)
        if decision is None:
            return None
        return {"camera": decision.camera, "list": decision.list, "person_id": self.person_id}
