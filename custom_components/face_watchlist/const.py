"""Constants shared by the integration's modules."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "face_watchlist"
NAME: Final = "Face Watchlist"

CONF_TRACK_PEOPLE: Final = "track_people"
CONF_ALERT_OFF_DELAY: Final = "alert_off_delay"
DEFAULT_ALERT_OFF_DELAY: Final = 60  # seconds the watchlist-alert binary sensor stays on

# The service's MQTT outputs (docs/interfaces.md).
TOPIC_PREFIX: Final = "face_watchlist"
TOPIC_AVAILABLE: Final = f"{TOPIC_PREFIX}/available"
TOPIC_STATUS: Final = f"{TOPIC_PREFIX}/status"
TOPIC_EVENTS: Final = f"{TOPIC_PREFIX}/events"
TOPIC_CAMERA_LAST: Final = f"{TOPIC_PREFIX}/cameras/+/last"
TOPIC_PERSON_LAST: Final = f"{TOPIC_PREFIX}/people/+/last"
TOPIC_REVIEWS: Final = f"{TOPIC_PREFIX}/reviews"
TOPIC_INTEGRATION: Final = f"{TOPIC_PREFIX}/integration"

EVENT_MATCH: Final = "face_watchlist_match"

# Event entity types.
EVENT_TYPE_MATCH: Final = "match"
EVENT_TYPE_UNKNOWN: Final = "unknown"
EVENT_TYPE_REVIEW_NEEDED: Final = "review_needed"

# Oldest service this integration speaks to (the contract in docs/interfaces.md).
MIN_SERVICE_VERSION: Final = "0.1.0"
