"""The aiohttp application: routes over the running service's state."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from face_watchlist import __version__
from face_watchlist.web.auth import middleware

SERVICE_KEY: web.AppKey[StatusSource] = web.AppKey("service")


class StatusSource(Protocol):
    def status(self) -> dict[str, object]: ...


async def health(request: web.Request) -> web.Response:
    status = request.app[SERVICE_KEY].status()
    ok = status.get("mqtt") == "connected"
    return web.json_response(
        {"status": "ok" if ok else "degraded", "service": "face_watchlist", "version": __version__},
        status=200 if ok else 503,
    )


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].status())


def make_app(service: StatusSource, token: str | None) -> web.Application:
    app = web.Application(middlewares=[middleware(token)], client_max_size=16 * 1024 * 1024)
    app[SERVICE_KEY] = service
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/status", status)
    return app
