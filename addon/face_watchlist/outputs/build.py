"""The outputs the settings ask for, ready to hand to the Service."""

from __future__ import annotations

import logging
from collections.abc import Callable

from face_watchlist.config import Settings
from face_watchlist.outputs.base import Output
from face_watchlist.outputs.discovery import Discovery
from face_watchlist.outputs.ha_events import HaEvents
from face_watchlist.outputs.sub_label import SubLabel

LOG = logging.getLogger(__name__)


def build_outputs(settings: Settings, face_crop: Callable[[int], bytes | None] | None = None) -> list[Output]:
    """Discovery always runs (switched off, it removes what an earlier run announced)."""
    options, ha = settings.outputs, settings.homeassistant
    outputs: list[Output] = [
        Discovery(options["discovery"], options["discovery_prefix"], face_crop=face_crop)
    ]
    if settings.frigate["write_sub_label"]:
        outputs.append(SubLabel(settings.frigate))
    if options["ha_events"]:
        if ha["url"] and ha["token"]:
            outputs.append(HaEvents(ha["url"], ha["token"], evidence_base_url=options["evidence_base_url"]))
        else:
            LOG.info("Home Assistant events off: set homeassistant.url and homeassistant.token")
    return outputs
