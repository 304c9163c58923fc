"""What the web layer needs from the running service, as a protocol (tests and the benchmark
build it from a real `Service` that is not running)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from face_watchlist.config import Settings
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.client import FrigateClient
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.records import DecisionRecord, Records, ReviewAction
from face_watchlist.web.auth import IDENTITY
from face_watchlist.web.push import Hub

if TYPE_CHECKING:
    from face_watchlist.web.imports import ImportJobs


class WebService(Protocol):
    settings: Settings
    gallery: Gallery
    pipeline: FacePipeline

    records: Records

    def status(self) -> dict[str, Any]: ...

    async def review(self, decision_id: int, action: ReviewAction, reviewer: str) -> DecisionRecord: ...

    def add_listener(self, listener: Callable[[str, dict[str, Any]], None]) -> None: ...

    @property
    def frigate_client(self) -> FrigateClient | None: ...

    @property
    def models_lock(self) -> asyncio.Lock: ...


SERVICE_KEY: web.AppKey[WebService] = web.AppKey("service")
HUB_KEY: web.AppKey[Hub] = web.AppKey("hub")
IMPORTS_KEY: web.AppKey[ImportJobs] = web.AppKey("imports")


def service_of(request: web.Request) -> WebService:
    return request.app[SERVICE_KEY]


def actor(request: web.Request) -> str:
    """`ha:<user>` through ingress, `token` with the bearer token: recorded with every change."""
    return request[IDENTITY].actor
