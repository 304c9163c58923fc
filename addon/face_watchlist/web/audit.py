"""The web's side of the audit log: every change made through the API is recorded with who made
it (`ha:<user>` or `token`). The log itself (hash-chained) lives in `face_watchlist.trust.audit`."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from aiohttp import web

from face_watchlist.web.context import actor, service_of

LOG = logging.getLogger(__name__)


def _log(request: web.Request) -> Any | None:
    try:  # the trust module is built in parallel; until it is present, changes are only logged
        module = importlib.import_module("face_watchlist.trust.audit")
    except ImportError:
        return None
    return module.AuditLog(service_of(request).gallery.store)


def record(request: web.Request, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
    LOG.info("%s: %s %s", actor(request), action, subject)
    log = _log(request)
    if log is not None:
        log.append(actor(request), action, subject, details or {})


def entries(request: web.Request, since: float | None, until: float | None, limit: int) -> list[Any] | None:
    log = _log(request)
    if log is None:
        return None
    return list(log.entries(since=since, until=until, limit=limit))
