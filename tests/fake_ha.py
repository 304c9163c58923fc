"""A local server speaking the part of Home Assistant's REST API the events output uses."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class FakeHomeAssistant:
    """The part of HA's REST API events use: bearer auth, POST /api/events/<type>."""

    def __init__(self, token: str = "long-lived-token") -> None:
        self.token = token
        self.fired: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _fire(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "401: Unauthorized"}, status=401)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=502, text="Bad gateway")
        event_type = request.match_info["event_type"]
        self.fired.append((event_type, await request.json()))
        return web.json_response({"message": f"Event {event_type} fired."})

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/api/events/{event_type}", self._fire)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
