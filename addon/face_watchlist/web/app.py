"""The aiohttp application: the API routes over the running service, the live stream and the UI."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from face_watchlist import __version__
from face_watchlist.web import routes_decisions, routes_gallery, routes_system, ui
from face_watchlist.web.auth import middleware
from face_watchlist.web.context import HUB_KEY, IMPORTS_KEY, SERVICE_KEY, WebService
from face_watchlist.web.errors import error_middleware
from face_watchlist.web.imports import ImportJobs
from face_watchlist.web.push import Hub
from face_watchlist.web.schemas import SCHEMAS
from face_watchlist.web.spec import Operation, Response, Routes, document, install

LOG = logging.getLogger(__name__)
MAX_BODY = 2 << 30  # an import's zip of photos; each route caps its own fields lower
OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("openapi")

meta = Routes()


@meta.route(
    "GET",
    "/api/openapi.json",
    "This document",
    "system",
    responses={200: Response("the OpenAPI 3 document", {"type": "object"})},
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


def operations() -> list[Operation]:
    groups = (routes_system.api, routes_gallery.api, routes_decisions.api, meta)
    return [op for group in groups for op in group.operations]


def make_app(service: WebService, token: str | None) -> web.Application:
    app = web.Application(middlewares=[error_middleware, middleware(token)], client_max_size=MAX_BODY)
    hub, ops = Hub(), operations()
    app[SERVICE_KEY] = service
    app[HUB_KEY] = hub
    app[IMPORTS_KEY] = ImportJobs(service)
    app[OPENAPI_KEY] = document(ops, __version__, SCHEMAS)
    install(app, ops)
    ui.install(app)
    service.add_listener(hub.publish)  # decisions and reviews, to the open pages

    async def on_shutdown(_: web.Application) -> None:
        hub.close()  # open streams end now instead of holding the shutdown for a minute
        await app[IMPORTS_KEY].close()

    app.on_shutdown.append(on_shutdown)
    return app
