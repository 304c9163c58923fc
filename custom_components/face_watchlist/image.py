"""Image entities per camera: the last matched face and its snapshot, fetched from the service."""

from __future__ import annotations

from datetime import UTC, datetime

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from . import FaceWatchlistConfigEntry
from .api import FaceWatchlistError
from .coordinator import FaceWatchlistCoordinator
from .entity import FaceWatchlistCameraEntity, add_camera_entities

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    coordinator = entry.runtime_data.coordinator
    entry.async_on_unload(
        add_camera_entities(
            coordinator,
            async_add_entities,
            lambda camera: [
                EvidenceImage(hass, coordinator, camera, "face"),
                EvidenceImage(hass, coordinator, camera, "snapshot"),
            ],
        )
    )


class EvidenceImage(FaceWatchlistCameraEntity, ImageEntity):
    """The evidence (face crop or snapshot) of the camera's last match."""

    _attr_content_type = "image/jpeg"

    def __init__(
        self, hass: HomeAssistant, coordinator: FaceWatchlistCoordinator, camera: str, kind: str
    ) -> None:
        FaceWatchlistCameraEntity.__init__(self, coordinator, camera, f"last_{kind}")
        ImageEntity.__init__(self, hass)
        self._kind = kind
        self._decision_id: int | None = None
        self._cached: tuple[int, bytes] | None = None
        self._sync()

    def _sync(self) -> None:
        """Follow the camera's last match; a new one changes the image's timestamp."""
        decision = self.decision
        if decision is None or not decision.is_match or decision.decision_id is None:
            return
        if decision.decision_id != self._decision_id:
            self._decision_id = decision.decision_id
            self._attr_image_last_updated = (
                datetime.fromtimestamp(decision.timestamp, UTC) if decision.timestamp else datetime.now(UTC)
            )
        self._attr_extra_state_attributes = self.coordinator.decision_attributes(decision)

    @callback
    def _handle_coordinator_update(self) -> None:
        self._sync()
        super()._handle_coordinator_update()

    async def async_image(self) -> bytes | None:
        decision_id = self._decision_id
        if decision_id is None:
            return None
        if self._cached is not None and self._cached[0] == decision_id:
            return self._cached[1]
        try:
            image = await self.coordinator.client.evidence(decision_id, self._kind)
        except FaceWatchlistError:
            return None  # evidence can be purged by retention; the image is then empty
        self._cached = (decision_id, image)
        return image
