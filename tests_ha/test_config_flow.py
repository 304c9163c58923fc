"""Config flow: user, add-on discovery, reconfigure, reauth, options; every error path."""

from __future__ import annotations

from unittest.mock import MagicMock, patch

import pytest
from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.face_watchlist.const import CONF_ALERT_OFF_DELAY, CONF_TRACK_PEOPLE, DOMAIN

from .fake_service import INSTANCE_ID, TOKEN, FakeService, error, status_body


async def _user(hass: HomeAssistant, url: str, token: str = TOKEN) -> dict:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: url, CONF_TOKEN: token}
    )


async def test_user_creates_entry(hass: HomeAssistant, service: FakeService) -> None:
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await _user(hass, f" {service.url}/ ")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: service.url, CONF_TOKEN: TOKEN}
    assert result["result"].unique_id == INSTANCE_ID


@pytest.mark.parametrize(
    ("change", "field", "error_key"),
    [
        ("bad_token", CONF_TOKEN, "invalid_auth"),
        ("bad_url", CONF_URL, "invalid_url"),
        ("down", "base", "cannot_connect"),
        ("other_service", "base", "wrong_service"),
        ("old_version", "base", "version_too_old"),
        ("no_version", "base", "version_too_old"),
        ("not_json", "base", "wrong_service"),
        ("no_instance", "base", "wrong_service"),
        ("status_list", "base", "wrong_service"),
        ("crash", "base", "unknown"),
    ],
)
async def test_user_errors_then_recovers(
    hass: HomeAssistant, service: FakeService, change: str, field: str, error_key: str
) -> None:
    from aiohttp import web

    url, token = service.url, TOKEN
    if change == "bad_token":
        token = "wrong"
    elif change == "bad_url":
        url = "not a url"
    elif change == "down":
        url = "http://127.0.0.1:1"  # nothing listens there
    elif change == "other_service":
        service.health = {"status": "ok", "service": "frigate", "version": "0.14"}
    elif change == "old_version":
        service.health = {"status": "ok", "service": "face_watchlist", "version": "0.0.9"}
    elif change == "no_version":
        service.health = {"status": "degraded", "service": "face_watchlist"}
    elif change == "not_json":
        service.fail["status"] = web.Response(text="<html>hello</html>")
    elif change == "no_instance":
        service.status = status_body(instance_id=None)
    elif change == "status_list":
        service.fail["status"] = web.json_response([1, 2])
    patcher = patch(
        "custom_components.face_watchlist.config_flow.FaceWatchlistClient.health",
        side_effect=RuntimeError("boom"),
    )
    if change == "crash":
        patcher.start()
    result = await _user(hass, url, token)
    if change == "crash":
        patcher.stop()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error_key}
    if change == "old_version":
        assert result["description_placeholders"] == {"version": "0.0.9", "minimum": "0.1.0"}

    # fixing the input (or the service) completes the flow
    service.health = {"status": "ok", "service": "face_watchlist", "version": "0.2.0"}
    service.status = status_body()
    service.fail.clear()
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_URL: service.url, CONF_TOKEN: TOKEN}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_degraded_service_is_accepted(hass: HomeAssistant, service: FakeService) -> None:
    service.health = {"status": "degraded", "service": "face_watchlist", "version": "0.1.0"}  # answered 503
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await _user(hass, service.url)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_same_service_twice_aborts(hass: HomeAssistant, service: FakeService) -> None:
    old = MockConfigEntry(
        domain=DOMAIN, unique_id=INSTANCE_ID, data={CONF_URL: "http://old:8099", CONF_TOKEN: "x"}
    )
    old.add_to_hass(hass)
    result = await _user(hass, service.url)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert old.data == {CONF_URL: service.url, CONF_TOKEN: TOKEN}  # the new address is kept


def _discovery(service: FakeService, token: str = TOKEN) -> HassioServiceInfo:
    host, port = service.url.removeprefix("http://").split(":")
    return HassioServiceInfo(
        config={"host": host, "port": int(port), "token": token},
        name="Face Watchlist",
        slug="abcd1234_face_watchlist",
        uuid="1234",
    )


async def test_hassio_discovery(hass: HomeAssistant, service: FakeService) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    assert result["description_placeholders"] == {"addon": "Face Watchlist"}
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: service.url, CONF_TOKEN: TOKEN}


async def test_hassio_discovery_updates_existing(hass: HomeAssistant, service: FakeService) -> None:
    old = MockConfigEntry(
        domain=DOMAIN, unique_id=INSTANCE_ID, data={CONF_URL: "http://old:8099", CONF_TOKEN: "x"}
    )
    old.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert old.data == {CONF_URL: service.url, CONF_TOKEN: TOKEN}


async def test_hassio_discovery_bad_token_aborts(hass: HomeAssistant, service: FakeService) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=_discovery(service, token="wrong")
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_auth"


async def test_reconfigure(hass: HomeAssistant, entry: MockConfigEntry, service: FakeService) -> None:
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://127.0.0.1:1", CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    new_url = service.url
    hass.config_entries.async_update_entry(entry, data={CONF_URL: "http://old:8099", CONF_TOKEN: "x"})
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_URL: new_url, CONF_TOKEN: TOKEN}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_URL] == new_url


async def test_reconfigure_to_another_instance_aborts(
    hass: HomeAssistant, entry: MockConfigEntry, service: FakeService
) -> None:
    service.status = status_body(instance_id="someone-else")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: service.url, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_instance"


async def test_reauth(hass: HomeAssistant, entry: MockConfigEntry, service: FakeService) -> None:
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: "wrong"})
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}
    with patch("custom_components.face_watchlist.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"


async def test_options_flow(hass: HomeAssistant, loaded: MockConfigEntry, mqtt: MagicMock) -> None:
    result = await hass.config_entries.options.async_init(loaded.entry_id)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ALERT_OFF_DELAY: 30, CONF_TRACK_PEOPLE: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert loaded.options == {CONF_ALERT_OFF_DELAY: 30, CONF_TRACK_PEOPLE: True}
    assert loaded.runtime_data.coordinator.track_people  # reloaded with the new options


async def test_flow_with_service_error_status(hass: HomeAssistant, service: FakeService) -> None:
    service.fail["status"] = error(500, "boom", "internal")
    result = await _user(hass, service.url)
    assert result["errors"] == {"base": "wrong_service"}
