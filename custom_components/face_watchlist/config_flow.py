"""Config flow: connect and verify (user, add-on discovery, reconfigure, reauth), and options."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from .api import CannotConnect, FaceWatchlistClient, FaceWatchlistError, InvalidAuth, parse_version
from .compat import vol
from .const import (
    CONF_ALERT_OFF_DELAY,
    CONF_TRACK_PEOPLE,
    DEFAULT_ALERT_OFF_DELAY,
    DOMAIN,
    MIN_SERVICE_VERSION,
    NAME,
)
from .models import Status

_LOGGER = logging.getLogger(__name__)

URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


class VersionTooOld(FaceWatchlistError):
    """The service is older than the contract this integration speaks."""


async def validate_service(hass: HomeAssistant, url: str, token: str) -> Status:
    """Check that the URL is a Face Watchlist service recent enough and that the token works."""
    cv.url(url)  # raises vol.Invalid
    client = FaceWatchlistClient(async_get_clientsession(hass), url, token)
    health = await client.health()
    version = health.get("version")
    if not isinstance(version, str) or parse_version(version) < parse_version(MIN_SERVICE_VERSION):
        raise VersionTooOld(str(version))
    return Status.from_dict(await client.status())


async def _validate_into(
    hass: HomeAssistant, url: str, token: str, errors: dict[str, str], placeholders: dict[str, str]
) -> Status | None:
    """validate_service, with each failure turned into the form's error key."""
    try:
        return await validate_service(hass, url, token)
    except vol.Invalid:
        errors[CONF_URL] = "invalid_url"
    except CannotConnect:
        errors["base"] = "cannot_connect"
    except InvalidAuth:
        errors[CONF_TOKEN] = "invalid_auth"
    except VersionTooOld as err:
        errors["base"] = "version_too_old"
        placeholders.update(version=str(err), minimum=MIN_SERVICE_VERSION)
    except (FaceWatchlistError, ValueError):
        errors["base"] = "wrong_service"
    except Exception:
        _LOGGER.exception("Unexpected error while checking %s", url)
        errors["base"] = "unknown"
    return None


class FaceWatchlistConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one entry per service instance (its instance_id is the unique id)."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, str] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> FaceWatchlistOptionsFlow:
        return FaceWatchlistOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip().rstrip("/")
            status = await _validate_into(self.hass, url, user_input[CONF_TOKEN], errors, placeholders)
            if status is not None:
                await self.async_set_unique_id(status.instance_id)
                self._abort_if_unique_id_configured(
                    updates={CONF_URL: url, CONF_TOKEN: user_input[CONF_TOKEN]}
                )
                return self.async_create_entry(
                    title=NAME, data={CONF_URL: url, CONF_TOKEN: user_input[CONF_TOKEN]}
                )
        schema = self.add_suggested_values_to_schema(
            vol.Schema({vol.Required(CONF_URL): URL_SELECTOR, vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            user_input or {CONF_URL: "http://"},
        )
        return self.async_show_form(
            step_id="user", data_schema=schema, errors=errors, description_placeholders=placeholders
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The add-on announced itself through the Supervisor."""
        config = discovery_info.config
        url = f"http://{config['host']}:{config['port']}"
        token = str(config.get("token", ""))
        errors: dict[str, str] = {}
        status = await _validate_into(self.hass, url, token, errors, {})
        if status is None:
            return self.async_abort(reason=next(iter(errors.values())))
        await self.async_set_unique_id(status.instance_id)
        self._abort_if_unique_id_configured(updates={CONF_URL: url, CONF_TOKEN: token})
        self._discovered = {CONF_URL: url, CONF_TOKEN: token, "addon": discovery_info.name}
        self.context["title_placeholders"] = {"addon": discovery_info.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(
                title=NAME,
                data={CONF_URL: self._discovered[CONF_URL], CONF_TOKEN: self._discovered[CONF_TOKEN]},
            )
        return self.async_show_form(
            step_id="hassio_confirm", description_placeholders={"addon": self._discovered["addon"]}
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            url = user_input[CONF_URL].strip().rstrip("/")
            status = await _validate_into(self.hass, url, user_input[CONF_TOKEN], errors, placeholders)
            if status is not None:
                await self.async_set_unique_id(status.instance_id)
                self._abort_if_unique_id_mismatch(reason="wrong_instance")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_URL: url, CONF_TOKEN: user_input[CONF_TOKEN]}
                )
        schema = self.add_suggested_values_to_schema(
            vol.Schema({vol.Required(CONF_URL): URL_SELECTOR, vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            user_input or {CONF_URL: entry.data[CONF_URL]},
        )
        return self.async_show_form(
            step_id="reconfigure", data_schema=schema, errors=errors, description_placeholders=placeholders
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"url": entry.data[CONF_URL]}
        if user_input is not None:
            token = user_input[CONF_TOKEN]
            status = await _validate_into(self.hass, entry.data[CONF_URL], token, errors, placeholders)
            if status is not None:
                await self.async_set_unique_id(status.instance_id)
                self._abort_if_unique_id_mismatch(reason="wrong_instance")
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: token})
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            errors=errors,
            description_placeholders=placeholders,
        )


class FaceWatchlistOptionsFlow(OptionsFlow):
    """How long an alert stays on; whether to follow people (off: it is tracking)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        options = self.config_entry.options
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_ALERT_OFF_DELAY, default=options.get(CONF_ALERT_OFF_DELAY, DEFAULT_ALERT_OFF_DELAY)
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=5, max=3600, step=5, mode=NumberSelectorMode.BOX, unit_of_measurement="s"
                    )
                ),
                vol.Required(
                    CONF_TRACK_PEOPLE, default=options.get(CONF_TRACK_PEOPLE, False)
                ): BooleanSelector(),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
