"""Home Assistant MQTT discovery, for users without the custom integration (and Node-RED users).

Device-based discovery (`<prefix>/device/<id>/config`): one device for the service (pending
reviews, matches today, Frigate's state) and one per camera (last decision, watch-list alert, the
last match's face crop, an event entity). Entities are named with `default_entity_id`, not the
`object_id` HA 2026.4 stopped honouring. Availability follows `face_watchlist/available`.

Discovery is re-announced when HA says `online` on `<prefix>/status`, withdrawn (empty retained
configs) while the integration's retained `face_watchlist/integration` marker is present, and
when the option is turned off (the devices announced before are remembered in a retained topic).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from face_watchlist import __version__
from face_watchlist.outputs.base import Bus
from face_watchlist.outputs.messages import (
    PREFIX,
    available_topic,
    camera_topic,
    dumps,
    status_topic,
    topic_segment,
)

LOG = logging.getLogger(__name__)
INTEGRATION_TOPIC = f"{PREFIX}/integration"
# which devices this service announced: retained, so turning discovery off after a restart still
# knows what to remove
ANNOUNCED_TOPIC = f"{PREFIX}/discovery/devices"
EVENT_TYPES = ("match", "review_needed", "unknown")
ORIGIN = {
    "name": "Face Watchlist",
    "sw_version": __version__,
    "support_url": "https://github.com/face-watchlist/face-watchlist",
}


def face_topic(camera: str) -> str:
    """The camera's last match's face crop (JPEG bytes, retained): the image entity's image_topic."""
    return f"{PREFIX}/cameras/{topic_segment(camera)}/face"


def event_topic(camera: str) -> str:
    """The camera's event entity: `{"event_type", ...decision}` per match or confirmation (not retained)."""
    return f"{PREFIX}/cameras/{topic_segment(camera)}/event"


def _slug(text: str) -> str:
    return topic_segment(text).lower().replace("-", "_")


def service_device_id(instance_id: str) -> str:
    return f"face_watchlist_{_slug(instance_id)}"


def camera_device_id(instance_id: str, camera: str) -> str:
    return f"{service_device_id(instance_id)}_{_slug(camera)}"


def config_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/device/{device_id}/config"


def _component(platform: str, unique_id: str, entity: str, name: str, **options: Any) -> dict[str, Any]:
    return {
        "platform": platform,
        "unique_id": unique_id,
        "default_entity_id": f"{platform}.{entity}",
        "name": name,
        **options,
    }


def service_config(instance_id: str) -> dict[str, Any]:
    """The service's device: what the status topic says, as sensors."""
    dev_id = service_device_id(instance_id)
    status = {"state_topic": status_topic()}
    return {
        "device": {
            "identifiers": [dev_id],
            "name": "Face Watchlist",
            "manufacturer": "Face Watchlist",
            "model": "Service",
            "sw_version": __version__,
        },
        "origin": ORIGIN,
        "availability_topic": available_topic(),
        "qos": 1,
        "components": {
            f"{dev_id}_pending_reviews": _component(
                "sensor",
                f"{dev_id}_pending_reviews",
                "face_watchlist_pending_reviews",
                "Pending reviews",
                value_template="{{ value_json.pending_reviews }}",
                state_class="measurement",
                icon="mdi:account-clock",
                **status,
            ),
            f"{dev_id}_matches_today": _component(
                "sensor",
                f"{dev_id}_matches_today",
                "face_watchlist_matches_today",
                "Matches today",
                value_template="{{ value_json.matches_today }}",
                icon="mdi:account-alert",
                **status,
            ),
            f"{dev_id}_frigate": _component(
                "binary_sensor",
                f"{dev_id}_frigate",
                "face_watchlist_frigate",
                "Frigate",
                device_class="connectivity",
                entity_category="diagnostic",
                value_template="{{ 'ON' if value_json.frigate == 'up' else 'OFF' }}",
                **status,
            ),
        },
    }


def camera_config(instance_id: str, camera: str) -> dict[str, Any]:
    """One camera's device: its last decision, a watch-list alert, the last face and an event entity."""
    dev_id = camera_device_id(instance_id, camera)
    entity = f"face_watchlist_{_slug(camera)}"
    last = camera_topic(camera)
    return {
        "device": {
            "identifiers": [dev_id],
            "name": f"Face Watchlist {camera}",
            "manufacturer": "Face Watchlist",
            "model": "Camera",
            "via_device": service_device_id(instance_id),
        },
        "origin": ORIGIN,
        "availability_topic": available_topic(),
        "qos": 1,
        "components": {
            # the state is the person's name on a match (what a notification wants to show),
            # the result otherwise; every field of the decision is an attribute
            f"{dev_id}_last": _component(
                "sensor",
                f"{dev_id}_last",
                f"{entity}_last_decision",
                "Last decision",
                state_topic=last,
                value_template=(
                    "{{ value_json.person if value_json.result == 'match' else value_json.result }}"
                ),
                json_attributes_topic=last,
                icon="mdi:face-recognition",
            ),
            # on for an immediate watch list's match: nobody needs to review before acting
            f"{dev_id}_alert": _component(
                "binary_sensor",
                f"{dev_id}_alert",
                f"{entity}_watchlist_alert",
                "Watch-list alert",
                state_topic=last,
                value_template=(
                    "{{ 'ON' if value_json.result == 'match' and value_json.list_kind == 'watch' "
                    "and value_json.review_state == 'alert' else 'OFF' }}"
                ),
                device_class="safety",
                off_delay=60,
            ),
            f"{dev_id}_face": _component(
                "image",
                f"{dev_id}_face",
                f"{entity}_face",
                "Last face",
                image_topic=face_topic(camera),
                content_type="image/jpeg",
            ),
            f"{dev_id}_event": _component(
                "event",
                f"{dev_id}_event",
                f"{entity}_face_event",
                "Face",
                state_topic=event_topic(camera),
                event_types=list(EVENT_TYPES),
            ),
        },
    }


def event_payload(kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The event entity's message for a decision or a review (None: nothing to tell)."""
    if kind == "decision":
        if data.get("result") == "match":
            event_type = "review_needed" if data.get("review_state") == "pending_review" else "match"
        elif data.get("result") == "unknown":
            event_type = "unknown"
        else:
            return None
    elif kind == "review" and data.get("review_state") == "confirmed":
        event_type = "match"
    else:
        return None
    return {"event_type": event_type, **data}


@dataclass(frozen=True)
class _Publish:
    topic: str
    payload: bytes
    retain: bool


class Discovery:
    """The Output: announces, re-announces and withdraws; publishes the face crops and events."""

    name = "discovery"

    def __init__(
        self,
        enabled: bool,
        prefix: str = "homeassistant",
        *,
        face_crop: Callable[[int], bytes | None] | None = None,  # a decision's face crop
    ) -> None:
        self.enabled, self.prefix = enabled, prefix
        self.topics: tuple[str, ...] = (f"{prefix}/status", INTEGRATION_TOPIC, ANNOUNCED_TOPIC)
        self._face_crop = face_crop
        self.integration: bool = False
        self.announced: set[str] = set()  # device ids whose config is out there
        self._previous: set[str] = set()  # what an earlier run announced (the retained list)
        self._cameras: set[str] = set()
        self._remembered: list[str] | None = None  # the list last published on ANNOUNCED_TOPIC
        self._wake = asyncio.Event()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=256)
        self.stats: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self.enabled and not self.integration

    # the service's calls ----------------------------------------------------------------------

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            self.stats["dropped"] += 1

    def message(self, topic: str, payload: bytes) -> None:
        if topic == f"{self.prefix}/status":
            if payload.strip() == b"online":
                LOG.info("Home Assistant is back online: announcing MQTT discovery again")
                self.announced.clear()
                self._wake.set()
        elif topic == INTEGRATION_TOPIC:
            present = bool(payload.strip())
            if present != self.integration:
                LOG.info(
                    "the Home Assistant integration is %s: MQTT discovery %s",
                    "set up" if present else "gone",
                    "withdrawn" if present else "announced",
                )
            self.integration = present
            self._wake.set()
        elif topic == ANNOUNCED_TOPIC:
            try:
                devices = json.loads(payload) if payload else []
            except ValueError:
                devices = []
            # our own list comes back too: only devices we do not know of are news
            news = (
                {str(d) for d in devices} - self.announced - self._previous
                if isinstance(devices, list)
                else set()
            )
            if news:
                self._previous |= news
                self._wake.set()

    async def connected(self, bus: Bus) -> None:
        self.announced.clear()
        self._remembered = None  # a new session: say it all again (retained anyway, cheap)
        self._wake.set()

    async def run(self, bus: Bus) -> None:
        changes = asyncio.ensure_future(self._changes(bus))
        try:
            while True:
                await self._wake.wait()
                # retained messages arrive just after subscribing: let them land before acting
                await asyncio.sleep(0.3)
                self._wake.clear()
                await self.sync(bus)
        finally:
            changes.cancel()

    async def _changes(self, bus: Bus) -> None:
        while True:
            kind, data = await self._queue.get()
            camera = data.get("camera")
            if isinstance(camera, str) and camera not in self._cameras:
                self._cameras.add(camera)
                self._wake.set()
            if not isinstance(camera, str):
                continue
            for item in self._publications(kind, data, camera):
                if not await bus.publish(item.topic, item.payload, retain=item.retain):
                    self.stats["publish_errors"] += 1

    def _publications(self, kind: str, data: dict[str, Any], camera: str) -> list[_Publish]:
        out = []
        decision_id = data.get("decision_id")
        if kind == "decision" and data.get("result") == "match" and isinstance(decision_id, int):
            crop = self._read_crop(decision_id)
            if crop:
                out.append(_Publish(face_topic(camera), crop, True))
        event = event_payload(kind, data)
        if event is not None and self.active:
            out.append(_Publish(event_topic(camera), dumps(event), False))
        return out

    def _read_crop(self, decision_id: int) -> bytes | None:
        if self._face_crop is None:
            return None
        try:
            crop: bytes | None = self._face_crop(decision_id)
        except Exception as err:  # evidence purged or unreadable: the entity keeps its last picture
            self.stats["crop_errors"] += 1
            LOG.warning("no face crop for decision %s: %s", decision_id, err)
            return None
        return crop

    # announce / withdraw ----------------------------------------------------------------------

    def wanted(self, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Device id -> discovery config, for the service and every camera heard of."""
        instance = str(status.get("instance_id") or "default")
        cameras = {str(c) for c in status.get("cameras") or []} | self._cameras
        configs = {service_device_id(instance): service_config(instance)}
        for camera in sorted(cameras):
            configs[camera_device_id(instance, camera)] = camera_config(instance, camera)
        return configs

    async def sync(self, bus: Bus) -> None:
        """Make the retained configs match what should be announced now."""
        wanted = self.wanted(bus.status()) if self.active else {}
        stale = (self.announced | self._previous) - set(wanted)
        for device_id in sorted(stale):
            if await bus.publish(config_topic(self.prefix, device_id), b"", retain=True):
                self.announced.discard(device_id)
                self._previous.discard(device_id)
                self.stats["withdrawn"] += 1
        for device_id, config in wanted.items():
            if device_id in self.announced:
                continue
            if await bus.publish(config_topic(self.prefix, device_id), dumps(config), retain=True):
                self.announced.add(device_id)
                self.stats["announced"] += 1
            else:
                self.stats["publish_errors"] += 1
        remembered = sorted(self.announced | self._previous)
        if remembered != self._remembered and await bus.publish(
            ANNOUNCED_TOPIC, dumps_list(remembered) if remembered else b"", retain=True
        ):
            self._remembered = remembered


def dumps_list(items: list[str]) -> bytes:
    return json.dumps(items, separators=(",", ":")).encode()
