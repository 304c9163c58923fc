"""Async HTTP client for the Face Watchlist service API (no Home Assistant imports)."""

from __future__ import annotations

import re
from typing import Any, BinaryIO, Final, cast

import aiohttp

SERVICE_NAME: Final = "face_watchlist"
DEFAULT_TIMEOUT: Final = 15.0


class FaceWatchlistError(Exception):
    """Base class of the client's errors."""


class CannotConnect(FaceWatchlistError):
    """The service did not answer (refused, timed out, not HTTP)."""


class InvalidAuth(FaceWatchlistError):
    """The service refused the token."""


class WrongService(FaceWatchlistError):
    """Something answered, but it is not a Face Watchlist service."""


class ApiError(FaceWatchlistError):
    """The service answered a request with an error (4xx/5xx other than auth)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def parse_version(version: str) -> tuple[int, ...]:
    """Leading numeric parts of a version string: '0.2.1rc1' -> (0, 2, 1)."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)


class FaceWatchlistClient:
    """Calls the service's HTTP API with a bearer token over a caller-owned aiohttp session."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, token: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        json: Any = None,
        data: Any = None,
        params: dict[str, str] | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        try:
            response = await self._session.request(
                method,
                f"{self.url}{path}",
                headers=headers,
                json=json,
                data=data,
                params=params,
                timeout=self._timeout,
            )
            await response.read()  # whole body now, so connection errors surface here
        except (aiohttp.ClientError, TimeoutError) as err:
            raise CannotConnect(str(err) or type(err).__name__) from err
        if response.status in (401, 403):
            raise InvalidAuth(f"{response.status} from {path}")
        if response.status >= 400 and response.status not in ok_statuses:
            code, message = "http_error", response.reason or ""
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if isinstance(body, dict):
                code = str(body.get("error", code))
                message = str(body.get("message", message))
            raise ApiError(response.status, code, message)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return await response.json(content_type=None)
        except ValueError as err:
            raise WrongService(f"{path} did not answer JSON") from err

    async def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await self._json(method, path, **kwargs)
        if not isinstance(body, dict):
            raise WrongService(f"{path} did not answer a JSON object")
        return cast(dict[str, Any], body)

    async def health(self) -> dict[str, Any]:
        """Open health check; a degraded service answers 503 with the same body."""
        body = await self._object("GET", "/api/health", auth=False, ok_statuses=(503,))
        if body.get("service") != SERVICE_NAME:
            raise WrongService(f"service is {body.get('service')!r}")
        return body

    async def status(self) -> dict[str, Any]:
        """The service's status (same body as its MQTT status topic)."""
        body = await self._object("GET", "/api/status")
        if not isinstance(body.get("instance_id"), str):
            raise WrongService("status has no instance_id")
        return body

    async def create_person(
        self, display_name: str, list_name: str, external_id: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"display_name": display_name, "list": list_name}
        if external_id:
            payload["external_id"] = external_id
        return await self._object("POST", "/api/people", json=payload)

    async def delete_person(self, person_id: int) -> None:
        await self._request("DELETE", f"/api/people/{person_id}")

    async def add_photo(
        self, person_id: int, image: bytes, filename: str, content_type: str
    ) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("photo", image, filename=filename, content_type=content_type)
        return await self._object("POST", f"/api/people/{person_id}/photos", data=form)

    async def add_photo_from_event(self, person_id: int, event_id: str) -> dict[str, Any]:
        return await self._object(
            "POST", f"/api/people/{person_id}/photos/from_event", json={"event_id": event_id}
        )

    async def review(self, decision_id: int, action: str, add_template: bool = False) -> dict[str, Any]:
        return await self._object(
            "POST",
            f"/api/decisions/{decision_id}/review",
            json={"action": action, "add_template": add_template},
        )

    async def start_import(
        self, list_name: str, csv: BinaryIO | None, photos: BinaryIO | None, replace: bool
    ) -> dict[str, Any]:
        """Upload a registry CSV and/or a zip of photos (which may hold the CSV): a 202 job.

        The files are streamed from the open file objects, never read whole into memory."""
        form = aiohttp.FormData()
        form.add_field("list", list_name)
        if csv is not None:
            form.add_field("csv", csv, filename="registry.csv", content_type="text/csv")
        if photos is not None:
            form.add_field("photos", photos, filename="photos.zip", content_type="application/zip")
        form.add_field("replace", "true" if replace else "false")
        return await self._object("POST", "/api/imports", data=form)

    async def purge(self, dry_run: bool) -> dict[str, Any]:
        return await self._object("POST", "/api/purge", json={"dry_run": dry_run})

    async def evidence(self, decision_id: int, kind: str) -> bytes:
        """JPEG evidence of a decision: kind is 'face' or 'snapshot'."""
        if kind not in ("face", "snapshot"):
            raise ValueError(f"unknown evidence kind {kind!r}")
        response = await self._request("GET", f"/api/decisions/{decision_id}/{kind}.jpg")
        return await response.read()
