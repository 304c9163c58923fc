"""The audit page's reading of the log. Changes made through the API are recorded by the store
itself, in the same transaction, with who made them (`ha:<user>` or `token`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from face_watchlist.trust.audit import AuditLog
from face_watchlist.web.context import service_of


def _log(request: web.Request) -> AuditLog:
    return service_of(request).gallery.store.audit


LATEST = datetime(9999, 12, 31, tzinfo=UTC).timestamp()  # datetime's range; beyond it, the same answer


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(min(max(moment, 0.0), LATEST), UTC).isoformat(timespec="microseconds")


def entries(request: web.Request, since: float | None, until: float | None, limit: int) -> list[Any]:
    """The newest `limit` entries in the range, newest first (the log reads oldest first)."""
    return [entry.as_dict() for entry in _log(request).newest(limit, _iso(since), _iso(until))]
