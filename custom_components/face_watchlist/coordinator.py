"""Push coordinator: the service's MQTT outputs become one state object, updated per message."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import FaceWatchlistClient, FaceWatchlistError
from .const import (
    CONF_TRACK_PEOPLE,
    DOMAIN,
    EVENT_MATCH,
    EVENT_TYPE_MATCH,
    EVENT_TYPE_REVIEW_NEEDED,
    EVENT_TYPE_UNKNOWN,
    TOPIC_AVAILABLE,
    TOPIC_CAMERA_LAST,
    TOPIC_EVENTS,
    TOPIC_PERSON_LAST,
    TOPIC_REVIEWS,
    TOPIC_STATUS,
)
from .models import Decision, Review, Status

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraEvent:
    """A live happening on a camera that automations care about (event entity, bus event)."""

    seq: int
    event_type: str
    decision: Decision


@dataclass(slots=True)
class FaceWatchlistState:
    """Everything the entities show; replaced field by field as messages arrive."""

    status: Status
    online: bool = True  # the service's own availability topic
    broker_connected: bool = True  # Home Assistant's MQTT client: while down we hear nothing
    cameras: dict[str, Decision] = field(default_factory=dict)  # last decision per camera
    events: dict[str, CameraEvent] = field(default_factory=dict)  # last live event per camera
    people: dict[int, Decision] = field(default_factory=dict)  # last match per person id

    @property
    def reachable(self) -> bool:
        return self.online and self.broker_connected

    @property
    def frigate_up(self) -> bool:
        return self.status.frigate != "down"

    def camera_names(self) -> set[str]:
        return set(self.status.cameras) | set(self.cameras)


def event_type_for(decision: Decision) -> str | None:
    """Which event-entity type a decision is, or None when automations need not hear of it."""
    if decision.result == "unknown":
        return EVENT_TYPE_UNKNOWN
    if not decision.is_match or decision.review_state == "rejected":
        return None
    return EVENT_TYPE_REVIEW_NEEDED if decision.review_state == "pending_review" else EVENT_TYPE_MATCH


def evidence_url(entry_id: str, decision_id: int, kind: str) -> str:
    """Home Assistant URL (our authenticated proxy view) of a decision's face or snapshot."""
    return f"/api/{DOMAIN}/{entry_id}/decisions/{decision_id}/{kind}.jpg"


def camera_identifier(instance_id: str, camera: str) -> tuple[str, str]:
    return (DOMAIN, f"{instance_id}_camera_{camera}")


class FaceWatchlistCoordinator(DataUpdateCoordinator[FaceWatchlistState]):
    """Fed by MQTT with async_set_updated_data; a manual refresh re-reads the HTTP status."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: FaceWatchlistClient,
        status: Status,
        service_device_id: str,
    ) -> None:
        super().__init__(hass, _LOGGER, config_entry=entry, name=DOMAIN)
        self.client = client
        self.service_device_id = service_device_id
        self.camera_devices: dict[str, str] = {}  # camera name -> device id
        self.instance_id = status.instance_id
        self.track_people: bool = entry.options.get(CONF_TRACK_PEOPLE, False)
        self._seq = 0
        self._logged_offline = False
        self._logged_frigate_down = False
        self.data = FaceWatchlistState(status=status)
        self._ensure_camera_devices(status.cameras)

    async def _async_update_data(self) -> FaceWatchlistState:
        """Only on request (homeassistant.update_entity): there is no polling interval."""
        try:
            status = Status.from_dict(await self.client.status())
        except (FaceWatchlistError, ValueError) as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        return dataclasses.replace(self.data, status=status)

    async def async_subscribe(self) -> list[CALLBACK_TYPE]:
        """Subscribe to the service's topics; the caller unsubscribes on unload."""
        topics: list[tuple[str, Any]] = [
            (TOPIC_AVAILABLE, self._on_available),
            (TOPIC_STATUS, self._on_status),
            (TOPIC_CAMERA_LAST, self._on_camera_last),
            (TOPIC_EVENTS, self._on_event),
            (TOPIC_REVIEWS, self._on_review),
        ]
        if self.track_people:
            topics.append((TOPIC_PERSON_LAST, self._on_person_last))
        unsubscribes = [
            await mqtt.async_subscribe(self.hass, topic, handler, qos=1) for topic, handler in topics
        ]
        unsubscribes.append(mqtt.async_subscribe_connection_status(self.hass, self._on_broker_connection))
        return unsubscribes

    # --- availability -------------------------------------------------------------------------

    def _log_availability(self) -> None:
        """Log each change of the service's or Frigate's availability once, at info."""
        state = self.data
        if not state.reachable and not self._logged_offline:
            if state.broker_connected:
                _LOGGER.info("Face Watchlist service is offline; its entities are unavailable")
            else:
                _LOGGER.info("MQTT broker disconnected; Face Watchlist entities are unavailable")
            self._logged_offline = True
        elif state.reachable and self._logged_offline:
            _LOGGER.info("Face Watchlist service is back online")
            self._logged_offline = False
        if state.reachable and not state.frigate_up and not self._logged_frigate_down:
            _LOGGER.info("Frigate is down; camera entities are unavailable")
            self._logged_frigate_down = True
        elif state.frigate_up and self._logged_frigate_down:
            _LOGGER.info("Frigate is back; camera entities are available again")
            self._logged_frigate_down = False

    def _publish(self) -> None:
        self._log_availability()
        self.async_set_updated_data(self.data)

    # --- message handlers (callbacks: the state is written in the same loop turn) ------------

    @callback
    def _on_broker_connection(self, connected: bool) -> None:
        """Home Assistant's MQTT client (dis)connected; on reconnection retained topics refill us."""
        self.data.broker_connected = connected
        self._publish()

    @callback
    def _on_available(self, msg: ReceiveMessage) -> None:
        online = msg.payload == "online"
        if online == self.data.online:
            return
        self.data.online = online
        self._publish()

    @callback
    def _on_status(self, msg: ReceiveMessage) -> None:
        try:
            status = Status.parse(msg.payload)
        except ValueError as err:
            _LOGGER.debug("Ignoring status message: %s", err)
            return
        if status.instance_id != self.instance_id:
            _LOGGER.debug("Ignoring status of another service instance %s", status.instance_id)
            return
        self.data.status = status
        self.data.online = True  # a status message is only sent by a running service
        self._ensure_camera_devices(status.cameras)
        self._publish()

    def _parse_decision(self, msg: ReceiveMessage) -> Decision | None:
        try:
            return Decision.parse(msg.payload)
        except ValueError as err:
            _LOGGER.debug("Ignoring decision on %s: %s", msg.topic, err)
            return None

    @callback
    def _on_camera_last(self, msg: ReceiveMessage) -> None:
        decision = self._parse_decision(msg)
        if decision is None:
            return
        self._store_last(decision)
        self._publish()

    @callback
    def _on_person_last(self, msg: ReceiveMessage) -> None:
        decision = self._parse_decision(msg)
        if decision is None or decision.person_id is None:
            return
        self.data.people[decision.person_id] = decision
        self._publish()

    def _store_last(self, decision: Decision) -> None:
        current = self.data.cameras.get(decision.camera)
        if current is not None and current.timestamp > decision.timestamp:
            return  # a retained message older than what a live one already told us
        self._ensure_camera_devices((decision.camera,))
        self.data.cameras[decision.camera] = decision
        if decision.is_match and decision.person_id is not None and self.track_people:
            self.data.people[decision.person_id] = decision

    @callback
    def _on_event(self, msg: ReceiveMessage) -> None:
        decision = self._parse_decision(msg)
        if decision is None:
            return
        self._store_last(decision)
        event_type = event_type_for(decision)
        if event_type is not None:
            self._record_event(event_type, decision)
        self._publish()

    @callback
    def _on_review(self, msg: ReceiveMessage) -> None:
        try:
            review = Review.parse(msg.payload)
        except ValueError as err:
            _LOGGER.debug("Ignoring review: %s", err)
            return
        last = self.data.cameras.get(review.camera)
        if last is not None and last.decision_id == review.decision_id:
            decision = dataclasses.replace(last, review_state=review.review_state)
            self.data.cameras[review.camera] = decision
        else:  # the review of an older decision: rebuild what automations need from the review
            decision = Decision(
                event_id=review.event_id or "",
                camera=review.camera,
                result="match",
                timestamp=review.timestamp or 0.0,
                person=review.person,
                person_id=review.person_id,
                list=review.list,
                review_state=review.review_state,
                decision_id=review.decision_id,
                has_face=True,
                has_snapshot=True,
            )
        if review.review_state == "confirmed":
            self._record_event(EVENT_TYPE_MATCH, decision, reviewer=review.reviewer)
        elif review.review_state == "rejected":  # automations may withdraw an alert
            self._fire_bus_event("rejected", decision, review.reviewer)
        self._publish()

    # --- devices and bus events ---------------------------------------------------------------

    def _ensure_camera_devices(self, cameras: tuple[str, ...]) -> None:
        """Create camera devices as soon as a camera is heard of, so bus events can name them."""
        registry = dr.async_get(self.hass)
        for camera in cameras:
            if camera in self.camera_devices:
                continue
            device = registry.async_get_or_create(
                config_entry_id=self.config_entry.entry_id,
                identifiers={camera_identifier(self.instance_id, camera)},
                name=camera.replace("_", " ").title(),
                manufacturer="Face Watchlist",
                model="Camera",
            )
            if device.via_device_id != self.service_device_id:
                registry.async_update_device(device.id, via_device_id=self.service_device_id)
            self.camera_devices[camera] = device.id

    def _record_event(self, event_type: str, decision: Decision, reviewer: str | None = None) -> None:
        self._seq += 1
        self.data.events[decision.camera] = CameraEvent(self._seq, event_type, decision)
        if decision.is_match:
            self._fire_bus_event(event_type, decision, reviewer)

    def _fire_bus_event(self, event_type: str, decision: Decision, reviewer: str | None) -> None:
        """face_watchlist_match: the same event type and fields the service fires into HA Core
        when no integration is set up (docs/interfaces.md), plus the device and entity ids."""
        entity_id = er.async_get(self.hass).async_get_entity_id(
            Platform.EVENT, DOMAIN, f"{self.instance_id}_{decision.camera}_face"
        )
        self.hass.bus.async_fire(
            EVENT_MATCH,
            {
                "device_id": self.camera_devices.get(decision.camera),
                "entity_id": entity_id,
                "config_entry_id": self.config_entry.entry_id,
                "event_type": event_type,
                "reviewer": reviewer,
                **self.decision_attributes(decision),
            },
        )

    def decision_attributes(self, decision: Decision) -> dict[str, Any]:
        """What entities and bus events tell about a decision (evidence as HA proxy URLs)."""
        entry_id = self.config_entry.entry_id
        did = decision.decision_id
        face = evidence_url(entry_id, did, "face") if did and decision.has_face else None
        return {
            "camera": decision.camera,
            "event_id": decision.event_id,
            "result": decision.result,
            "person": decision.person,
            "person_id": decision.person_id,
            "list": decision.list,
            "list_kind": decision.list_kind,
            "review_state": decision.review_state,
            "decision_id": did,
            "score": decision.score,
            "margin": decision.margin,
            "false_match_rate": decision.false_match_rate,
            "timestamp": decision.timestamp,
            "face_url": face,
            "evidence_url": face,  # the name the service's own Core event uses
            "snapshot_url": (
                evidence_url(entry_id, did, "snapshot") if did and decision.has_snapshot else None
            ),
        }
