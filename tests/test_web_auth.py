"""Who may use the HTTP API: ingress from the Supervisor's proxy, or the bearer token."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from face_watchlist.web.app import make_app
from face_watchlist.web.auth import INGRESS_PROXY, identify

TOKEN = "s3cret-token-for-tests"


class FakeService:
    def __init__(self, mqtt: str = "connected") -> None:
        self.mqtt = mqtt

    def status(self) -> dict[str, Any]:
        return {"mqtt": self.mqtt, "frigate": "up", "queue_depth": 0}

    def add_listener(self, listener: Any) -> None:  # the app pushes decisions to its pages
        pass


def test_ingress_needs_the_proxy_address_and_header() -> None:
    headers = {"X-Ingress-Path": "/api/hassio_ingress/abc", "X-Remote-User-Name": "frontdesk"}
    assert identify(INGRESS_PROXY, headers, None).actor == "ha:frontdesk"  # type: ignore[union-attr]
    assert identify("172.30.32.3", headers, None) is None  # a spoofed header from elsewhere
    assert identify(INGRESS_PROXY, {}, None) is None


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer {TOKEN}x", False),
        (f"Basic {TOKEN}", False),
        ("Bearer ", False),
        ("", False),
    ],
)
def test_bearer_token(header: str, ok: bool) -> None:
    assert (identify("10.0.0.5", {"Authorization": header}, TOKEN) is not None) is ok


def test_no_configured_token_admits_no_bearer() -> None:
    assert identify("10.0.0.5", {"Authorization": "Bearer "}, None) is None


async def _client(service: FakeService, token: str | None = TOKEN) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(service, token)))
    await client.start_server()
    return client


async def test_health_is_open_and_reports_the_broker() -> None:
    client = await _client(FakeService())
    try:
        response = await client.get("/api/health")
        assert response.status == 200
        assert (await response.json())["service"] == "face_watchlist"
    finally:
        await client.close()
    client = await _client(FakeService("disconnected"))
    try:
        response = await client.get("/api/health")
        assert response.status == 503
        assert (await response.json())["status"] == "degraded"
    finally:
        await client.close()


async def test_status_needs_a_token() -> None:
    client = await _client(FakeService())
    try:
        assert (await client.get("/api/status")).status == 401
        response = await client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert (await response.json())["frigate"] == "up"
    finally:
        await client.close()
