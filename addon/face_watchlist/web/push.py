"""Server-Sent Events to open pages: each published decision and each review, as it happens.

A slow or vanished page must not hold the service: every subscriber has a small bounded queue,
and one that falls behind is dropped (its browser reconnects and reloads the page's data).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

LOG = logging.getLogger(__name__)
QUEUE = 100
HEARTBEAT_S = 15.0


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str | None]] = set()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Called on the event loop; never blocks."""
        frame = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells its stream to end
                LOG.info("dropped a page that fell %d events behind", QUEUE)

    def close(self) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # proxies (HA ingress, nginx) must not buffer it
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE)
        self._subscribers.add(queue)
        try:
            await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    frame = ": keep-alive\n\n"
                if frame is None:
                    break
                await response.write(frame.encode())
        except ConnectionResetError:
            pass
        finally:
            self._subscribers.discard(queue)
        return response
