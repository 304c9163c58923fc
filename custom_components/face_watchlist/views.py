"""Authenticated proxy for a decision's evidence, so notifications and dashboards can show the face
and the snapshot without knowing the service's token."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .api import ApiError, FaceWatchlistError
from .const import DOMAIN


class EvidenceView(HomeAssistantView):
    """GET /api/face_watchlist/<entry>/decisions/<id>/<face|snapshot>.jpg (HA auth required)."""

    url = "/api/face_watchlist/{entry_id}/decisions/{decision_id:[0-9]+}/{kind:(face|snapshot)}.jpg"
    name = "api:face_watchlist:evidence"
    requires_auth = True

    async def get(self, request: web.Request, entry_id: str, decision_id: str, kind: str) -> web.Response:
        hass = request.app[KEY_HASS]
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
            return web.Response(status=HTTPStatus.NOT_FOUND)
        try:
            image = await entry.runtime_data.client.evidence(int(decision_id), kind)
        except ApiError as err:
            status = HTTPStatus.NOT_FOUND if err.status == HTTPStatus.NOT_FOUND else HTTPStatus.BAD_GATEWAY
            return web.Response(status=status)
        except FaceWatchlistError:
            return web.Response(status=HTTPStatus.BAD_GATEWAY)
        return web.Response(
            body=image, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
        )
