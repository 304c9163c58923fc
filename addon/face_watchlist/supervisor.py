"""Start-up under the Home Assistant Supervisor: options.json + what the Supervisor knows -> settings.

The pure functions turn the add-on's options, the Supervisor's MQTT service answer and the add-on's
own info into the service's raw configuration; the async ones ask the Supervisor (its API at
http://supervisor, authorised by SUPERVISOR_TOKEN). Everything the add-on keeps lives under /data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from face_watchlist.errors import FaceWatchlistError

LOG = logging.getLogger(__name__)

SUPERVISOR_URL = "http://supervisor"
DEFAULT_INGRESS_PORT = 8099
DISCOVERY_SERVICE = "face_watchlist"
TOKEN_FILE = "api_token"
TIMEOUT = aiohttp.ClientTimeout(total=15)


class SupervisorError(FaceWatchlistError):
    """The Supervisor could not be asked, or said no."""


@dataclass(frozen=True)
class MqttService:
    host: str
    port: int
    username: str | None
    password: str | None


@dataclass(frozen=True)
class AddonInfo:
    hostname: str  # this add-on's name inside Home Assistant's network: where the integration calls
    ingress_port: int


# pure -----------------------------------------------------------------------------------------


def _data(answer: Any, what: str) -> dict[str, Any]:
    """The Supervisor wraps answers as {"result": "ok", "data": {...}}."""
    if (
        not isinstance(answer, dict)
        or answer.get("result") != "ok"
        or not isinstance(answer.get("data"), dict)
    ):
        message = answer.get("message") if isinstance(answer, dict) else None
        raise SupervisorError(f"the Supervisor's answer for {what} is unusable: {message or answer!r}")
    data: dict[str, Any] = answer["data"]
    return data


def parse_mqtt_service(answer: Any) -> MqttService:
    data = _data(answer, "the MQTT service")
    if not data.get("host"):
        raise SupervisorError(
            "no MQTT broker is provided: install and start the Mosquitto broker add-on, "
            "or set mqtt.host in this add-on's configuration"
        )
    if data.get("ssl"):
        raise SupervisorError("the provided MQTT broker requires TLS, which this service does not speak yet")
    try:
        port = int(data.get("port") or 1883)
    except (TypeError, ValueError):
        raise SupervisorError(f"the MQTT service has an invalid port: {data.get('port')!r}") from None
    return MqttService(str(data["host"]), port, data.get("username") or None, data.get("password") or None)


def parse_addon_info(answer: Any) -> AddonInfo:
    data = _data(answer, "this add-on")
    hostname = data.get("hostname") or socket.gethostname()
    port = data.get("ingress_port") or DEFAULT_INGRESS_PORT
    return AddonInfo(str(hostname), int(port))


def user_broker(options: dict[str, Any]) -> bool:
    """The user named a broker: use it as given, ask the Supervisor for nothing."""
    return bool((options.get("mqtt") or {}).get("host"))


def service_config(
    options: dict[str, Any],
    mqtt: MqttService | None,
    info: AddonInfo,
    data_dir: Path,
    token: str,
    *,
    core: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The service's raw configuration (validated by config.SCHEMA) from the add-on's options.

    `core`: Home Assistant Core's API through the Supervisor (its `/core` URL, SUPERVISOR_TOKEN).
    """
    raw: dict[str, Any] = {
        key: dict(value) if isinstance(value, dict) else value for key, value in options.items()
    }
    raw["data_dir"] = str(data_dir)
    raw.setdefault("faces", {}).pop("model_dir", None)  # <data_dir>/models
    broker = {k: v for k, v in (raw.get("mqtt") or {}).items() if v not in (None, "")}
    if mqtt is not None and not user_broker(options):
        broker.update(host=mqtt.host, port=mqtt.port, username=mqtt.username, password=mqtt.password)
    raw["mqtt"] = broker
    # every interface: ingress (172.30.32.2, no token) and the integration (bearer token) both call in
    raw["web"] = {**(raw.get("web") or {}), "host": "0.0.0.0", "port": info.ingress_port, "token": token}
    if core is not None:
        raw["homeassistant"] = {"url": core[0], "token": core[1]}
    return raw


def discovery_message(info: AddonInfo, token: str) -> dict[str, Any]:
    """What the integration's async_step_hassio receives (docs/interfaces.md)."""
    return {
        "service": DISCOVERY_SERVICE,
        "config": {"host": info.hostname, "port": info.ingress_port, "token": token},
    }


def api_token(data_dir: Path) -> str:
    """The integration's bearer token: made once, kept in /data (readable by the add-on only)."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= 32:
        return token
    token = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TOKEN_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return token


# the Supervisor's API -----------------------------------------------------------------------------


class Supervisor:
    def __init__(self, session: aiohttp.ClientSession, token: str, base_url: str = SUPERVISOR_URL) -> None:
        self.session, self.base_url = session, base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, what: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(
                method, url, json=body, headers=self.headers, timeout=TIMEOUT
            ) as response:
                if response.status >= 400:
                    detail = (await response.text())[:200]
                    raise SupervisorError(f"{what}: the Supervisor answered HTTP {response.status}: {detail}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise SupervisorError(
                f"{what}: cannot reach the Supervisor at {url} ({err or type(err).__name__})"
            ) from None

    async def mqtt_service(self) -> MqttService:
        return parse_mqtt_service(await self._call("GET", "/services/mqtt", "MQTT credentials"))

    async def addon_info(self) -> AddonInfo:
        return parse_addon_info(await self._call("GET", "/addons/self/info", "this add-on's info"))

    async def announce(self, message: dict[str, Any]) -> str:
        """Post the discovery message; the Supervisor hands it to Home Assistant. Returns its uuid."""
        data = _data(await self._call("POST", "/discovery", "discovery", message), "discovery")
        return str(data.get("uuid", ""))

    async def core_running(self) -> bool:
        """Home Assistant Core's REST API through the Supervisor's proxy (homeassistant_api: true)."""
        try:
            answer = await self._call("GET", "/core/api/", "Home Assistant Core")
        except SupervisorError as err:
            LOG.warning("%s", err)
            return False
        return isinstance(answer, dict) and "message" in answer


async def wait_and_announce(
    supervisor: Supervisor,
    message: dict[str, Any],
    health_url: str,
    stop: asyncio.Event,
    patience: float = 120.0,
) -> str | None:
    """Announce once the HTTP server answers, so the integration never calls a closed port; retry
    the Supervisor with backoff. None when stopped or out of patience (logged: the UI still works)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as local:
        while not stop.is_set():
            try:
                async with local.get(health_url) as response:
                    if response.status in (200, 503):  # listening; 503 only means MQTT is not up yet
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            if loop.time() > deadline:
                LOG.error("the HTTP server did not come up: Home Assistant was not told about this add-on")
                return None
            await asyncio.sleep(0.2)
    delay = 1.0
    while not stop.is_set():
        try:
            uuid = await supervisor.announce(message)
        except SupervisorError as err:
            if loop.time() > deadline:
                LOG.error("discovery failed: %s", err)
                return None
            LOG.warning("discovery failed (%s); retrying in %.0f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        LOG.info(
            "announced to Home Assistant as %s:%s (discovery %s)",
            message["config"]["host"],
            message["config"]["port"],
            uuid,
        )
        return uuid
    return None
