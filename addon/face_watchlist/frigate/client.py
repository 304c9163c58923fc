"""Frigate's HTTP API, as far as we use it: snapshots, latest frames, config, sub_label.

Works against the authenticated port (8971: `POST /api/login`, then a bearer token refreshed when
Frigate answers 401) or the internal port (5000: no credentials). Every call has a timeout and a
few retries with backoff; when they are used up the client reports Frigate as unreachable
instead of failing silently, and says so once when the state changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

import aiohttp

from face_watchlist.errors import FaceWatchlistError

LOG = logging.getLogger(__name__)
State = Literal["unknown", "ok", "unreachable", "unauthorized"]
MAX_IMAGE_BYTES = 32 << 20


class FrigateError(FaceWatchlistError):
    """Frigate could not give what was asked."""


class FrigateUnavailable(FrigateError):
    """Frigate did not answer, or answered with server errors, after the retries."""


class FrigateAuthError(FrigateError):
    """Frigate refused our credentials."""


class FrigateNotFound(FrigateError):
    """Frigate does not know this event or camera."""


class FrigateClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        on_state: Callable[[State], None] | None = None,
    ) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._credentials = (username, password) if username else None
        self._token: str | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries, self._backoff = retries, backoff_s
        self._on_state = on_state
        self.state: State = "unknown"

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            log = LOG.info if state == "ok" else LOG.warning
            log("Frigate at %s is %s", self.url, state)
            if self._on_state:
                self._on_state(state)

    async def _login(self) -> None:
        assert self._credentials is not None
        user, password = self._credentials
        async with self._session.post(
            f"{self.url}/api/login", json={"user": user, "password": password}, timeout=self._timeout
        ) as response:
            if response.status in (401, 403):
                self._set_state("unauthorized")
                raise FrigateAuthError(f"Frigate at {self.url} refused the login of {user!r}")
            if response.status != 200:
                raise FrigateUnavailable(f"Frigate login answered HTTP {response.status}")
            token = response.cookies.get("frigate_token")
            self._token = token.value if token is not None else None
            if not self._token:
                raise FrigateAuthError("Frigate's login answer carried no frigate_token")

    async def _request(self, method: str, path: str, **kwargs: Any) -> bytes:
        last: str = ""
        relogged = False
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                if self._credentials and self._token is None:
                    await self._login()
                headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
                async with self._session.request(
                    method, f"{self.url}{path}", headers=headers, timeout=self._timeout, **kwargs
                ) as response:
                    if response.status == 401 and self._credentials and not relogged:
                        self._token, relogged = None, True  # expired: log in again, once
                        continue
                    if response.status in (401, 403):
                        self._set_state("unauthorized")
                        raise FrigateAuthError(f"Frigate refused {method} {path}: HTTP {response.status}")
                    if response.status == 404:
                        self._set_state("ok")
                        raise FrigateNotFound(f"Frigate has no {path}")
                    if response.status >= 500:
                        last = f"HTTP {response.status}"
                        continue
                    if response.status >= 400:
                        detail = (await response.text())[:200]
                        raise FrigateError(
                            f"Frigate refused {method} {path}: HTTP {response.status} {detail}"
                        )
                    body = await _read_capped(response, path)
                    self._set_state("ok")
                    return body
            except (aiohttp.ClientError, TimeoutError) as err:
                last = type(err).__name__ if isinstance(err, TimeoutError) else str(err) or type(err).__name__
        self._set_state("unreachable")
        raise FrigateUnavailable(f"Frigate at {self.url} unreachable for {path} ({last})")

    async def snapshot(
        self, event_id: str, *, height: int | None = None, quality: int = 95, crop: bool = False
    ) -> bytes:
        """The event's best snapshot so far (`height`, not the obsolete `h`, since Frigate 0.15)."""
        params = {"crop": int(crop), "quality": quality, "bbox": 0, "timestamp": 0}
        if height:
            params["height"] = height
        return await self._request("GET", f"/api/events/{_segment(event_id)}/snapshot.jpg", params=params)

    async def latest_frame(self, camera: str, *, quality: int = 95) -> bytes:
        """The camera's current frame at full detect resolution."""
        return await self._request("GET", f"/api/{_segment(camera)}/latest.jpg", params={"quality": quality})

    async def config(self) -> dict[str, Any]:
        try:
            data = json.loads(await self._request("GET", "/api/config"))
        except ValueError:
            raise FrigateError("Frigate's /api/config is not JSON") from None
        if not isinstance(data, dict):
            raise FrigateError("Frigate's /api/config is not an object")
        return data

    async def event(self, event_id: str) -> dict[str, Any]:
        """The event's database row (`sub_label` is the bare name there)."""
        try:
            data = json.loads(await self._request("GET", f"/api/events/{_segment(event_id)}"))
        except ValueError:
            raise FrigateError(f"Frigate's answer for event {event_id} is not JSON") from None
        if not isinstance(data, dict):
            raise FrigateError(f"Frigate's answer for event {event_id} is not an object")
        return data

    async def clear_sub_label(self, event_id: str) -> None:
        await self._request("POST", f"/api/events/{_segment(event_id)}/sub_label", json={"subLabel": ""})

    async def set_sub_label(self, event_id: str, name: str, score: float) -> None:
        if not 0 < score <= 1:
            raise ValueError("a sub_label score must be in (0, 1]")
        body = {"subLabel": name[:100], "subLabelScore": round(score, 4)}
        await self._request("POST", f"/api/events/{_segment(event_id)}/sub_label", json=body)


async def _read_capped(response: aiohttp.ClientResponse, path: str) -> bytes:
    """The whole body, refusing one over MAX_IMAGE_BYTES without holding it all first."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise FrigateError(f"Frigate's answer to {path} is over {MAX_IMAGE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _segment(value: str) -> str:
    """An id or camera name as one path segment: nothing that could climb out of the route."""
    if not value or any(c in value for c in "/\\?#%") or value in (".", ".."):
        raise FrigateError(f"refusing a suspicious path segment {value[:60]!r}")
    return value
