"""The web's side of the audit log: every change made through the API is recorded with who made
it (`ha:<user>` or `token`). The log itself (hash-chained) is `face_watchlist.trust.audit`."""

from __future__ import annotations

import importlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from face_watchlist.web.context import actor, service_of

LOG = logging.getLogger(__name__)


def _log(request: web.Request) -> Any | None:
    # built in parallel on the `trust` branch; until it is merged, changes are only logged
    try:
        module = importlib.import_module("face_watchlist.trust.audit")
    except ImportError:
        return None
    return module.AuditLog(service_of(request).gallery.store)


def record(request: web.Request, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
    LOG.info("%s: %s %s", actor(request), action, subject)
    log = _log(request)
    if log is not None:
        log.append(actor(request), action, subject, details or {})


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")


def entries(request: web.Request, since: float | None, until: float | None, limit: int) -> list[Any] | None:
    """The newest `limit` entries in the range, newest first (the log reads oldest first)."""
    log = _log(request)
    if log is None:
        return None
    newest: deque[Any] = deque(log.iter_entries(_iso(since), _iso(until)), maxlen=limit)
    return [entry.as_dict() for entry in reversed(newest)]
