"""Base entities: one device for the service, one per camera, availability from the push state."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import FaceWatchlistCoordinator, camera_identifier
from .models import Decision


class FaceWatchlistEntity(CoordinatorEntity[FaceWatchlistCoordinator]):
    """An entity of the service device; unavailable while the service is offline."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: FaceWatchlistCoordinator, key: str) -> None:
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.instance_id}_{key}"
        self._attr_translation_key = key
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.instance_id)})

    @property
    def available(self) -> bool:
        return self.coordinator.data.reachable


class FaceWatchlistCameraEntity(FaceWatchlistEntity):
    """An entity of a camera device; also unavailable while Frigate is down."""

    def __init__(self, coordinator: FaceWatchlistCoordinator, camera: str, key: str) -> None:
        super().__init__(coordinator, key)
        self.camera = camera
        self._attr_unique_id = f"{coordinator.instance_id}_{camera}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={camera_identifier(coordinator.instance_id, camera)},
            name=camera.replace("_", " ").title(),
            manufacturer="Face Watchlist",
            model="Camera",
        )  # linked to the service device by the coordinator, which registers cameras first

    @property
    def available(self) -> bool:
        return self.coordinator.data.reachable and self.coordinator.data.frigate_up

    @property
    def decision(self) -> Decision | None:
        return self.coordinator.data.cameras.get(self.camera)


def add_camera_entities(
    coordinator: FaceWatchlistCoordinator,
    async_add_entities: AddEntitiesCallback,
    factory: Callable[[str], Iterable[Entity]],
) -> Callable[[], None]:
    """Add a camera's entities now for known cameras, and later for each camera heard of."""
    added: set[str] = set()

    @callback
    def _add_new() -> None:
        new = sorted(coordinator.data.camera_names() - added)
        if new:
            added.update(new)
            async_add_entities([entity for camera in new for entity in factory(camera)])

    _add_new()
    return coordinator.async_add_listener(_add_new)
