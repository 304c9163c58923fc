"""Watchlist-alert binary sensor per camera: on at a watch-list match, off after a delay."""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined]  # re-export since 2026
    BinarySensorDeviceClass,
    BinarySensorEntity,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.event import async_call_later

from . import FaceWatchlistConfigEntry
from .const import CONF_ALERT_OFF_DELAY, DEFAULT_ALERT_OFF_DELAY
from .coordinator import FaceWatchlistCoordinator
from .entity import FaceWatchlistCameraEntity, add_camera_entities

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: FaceWatchlistConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    coordinator = entry.runtime_data.coordinator
    delay = float(entry.options.get(CONF_ALERT_OFF_DELAY, DEFAULT_ALERT_OFF_DELAY))
    entry.async_on_unload(
        add_camera_entities(
            coordinator, async_add_entities, lambda camera: [WatchlistAlert(coordinator, camera, delay)]
        )
    )


class WatchlistAlert(FaceWatchlistCameraEntity, BinarySensorEntity):
    """On when someone on a watch list was matched (pending review, alert or confirmed)."""

    _attr_device_class = BinarySensorDeviceClass.SAFETY

    def __init__(self, coordinator: FaceWatchlistCoordinator, camera: str, off_delay: float) -> None:
        super().__init__(coordinator, camera, "watchlist_alert")
        self._off_delay = off_delay
        self._seen_seq = self._current_seq()
        self._cancel_off: CALLBACK_TYPE | None = None
        self._attr_is_on = False

    def _current_seq(self) -> int:
        event = self.coordinator.data.events.get(self.camera)
        return event.seq if event else 0

    async def async_will_remove_from_hass(self) -> None:
        self._cancel_timer()
        await super().async_will_remove_from_hass()

    def _cancel_timer(self) -> None:
        if self._cancel_off is not None:
            self._cancel_off()
            self._cancel_off = None

    @callback
    def _handle_coordinator_update(self) -> None:
        event = self.coordinator.data.events.get(self.camera)
        if event is not None and event.seq > self._seen_seq:
            self._seen_seq = event.seq
            if event.decision.is_watch_alert:
                self._attr_is_on = True
                self._attr_extra_state_attributes = self.coordinator.decision_attributes(event.decision)
                self._cancel_timer()
                self._cancel_off = async_call_later(self.hass, self._off_delay, self._turn_off)
        last = self.coordinator.data.cameras.get(self.camera)
        if self._attr_is_on and last is not None and last.review_state == "rejected":
            self._cancel_timer()  # a reviewer said it was not them: stand down now
            self._attr_is_on = False
        super()._handle_coordinator_update()

    @callback
    def _turn_off(self, _now: datetime) -> None:
        self._cancel_off = None
        self._attr_is_on = False
        self.async_write_ha_state()
