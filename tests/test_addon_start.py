"""The add-on's run script and start-up against a fake Supervisor and a real Mosquitto (with auth)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from addon_rig import (
    MQTT_PASSWORD,
    MQTT_USER,
    SUPERVISOR_TOKEN,
    FakeSupervisor,
    Watcher,
    auth_broker,
    default_options,
    free_port,
    seed_data,
    wait_health,
)
from face_watchlist.config import load_settings
from face_watchlist.outputs.build import build_outputs
from face_watchlist.supervisor import (
    AddonInfo,
    MqttService,
    SupervisorError,
    api_token,
    discovery_message,
    parse_addon_info,
    parse_mqtt_service,
    service_config,
)

ROOT = Path(__file__).resolve().parents[1]
RUN_SCRIPT = ROOT / "addon/rootfs/etc/services.d/face_watchlist/run"
INFO = AddonInfo("a0d7b954-face-watchlist", 8099)


# pure parts -------------------------------------------------------------------------------------


def test_mqtt_service_answer_becomes_the_broker() -> None:
    answer = {
        "result": "ok",
        "data": {"host": "core-mosquitto", "port": 1883, "ssl": False, "username": "u", "password": "p"},
    }
    assert parse_mqtt_service(answer) == MqttService("core-mosquitto", 1883, "u", "p")


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"result": "error", "message": "No mqtt service"}, "No mqtt service"),
        ({"result": "ok", "data": {}}, "Mosquitto broker add-on"),
        ({"result": "ok", "data": {"host": "h", "port": 8883, "ssl": True}}, "TLS"),
        ({"result": "ok", "data": {"host": "h", "port": "x"}}, "invalid port"),
        ("not json", "unusable"),
    ],
)
def test_unusable_mqtt_answers_are_clear_errors(answer: Any, says: str) -> None:
    with pytest.raises(SupervisorError, match=says):
        parse_mqtt_service(answer)


def test_addon_info_falls_back_to_the_container() -> None:
    assert parse_addon_info(
        {"result": "ok", "data": {"hostname": "abc-x", "ingress_port": 63000}}
    ) == AddonInfo("abc-x", 63000)
    assert parse_addon_info({"result": "ok", "data": {}}).ingress_port == 8099


def test_service_config_uses_the_supervisors_broker_unless_the_user_set_one(tmp_path: Path) -> None:
    options = default_options()
    handed = MqttService("core-mosquitto", 1883, "addons", "secret")
    raw = service_config(options, handed, INFO, tmp_path, "t" * 40)
    assert raw["mqtt"] == {
        "client_id": "face_watchlist",
        "host": "core-mosquitto",
        "port": 1883,
        "username": "addons",
        "password": "secret",
    }
    assert raw["data_dir"] == str(tmp_path)
    assert raw["web"] == {"host": "0.0.0.0", "port": 8099, "token": "t" * 40}
    assert "model_dir" not in raw["faces"]
    assert options["mqtt"] == {"client_id": "face_watchlist"}, "the options must not be modified"

    mine = default_options(mqtt={"host": "broker.school.lan", "username": "fw", "password": "pw"})
    raw = service_config(mine, handed, INFO, tmp_path, "t" * 40)
    assert raw["mqtt"]["host"] == "broker.school.lan"
    assert raw["mqtt"]["username"] == "fw"
    assert "port" not in raw["mqtt"], "the service's default port applies"


def test_service_config_reaches_home_assistant_through_the_supervisor(tmp_path: Path) -> None:
    core = ("http://supervisor/core", SUPERVISOR_TOKEN)
    raw = service_config(default_options(), None, INFO, tmp_path, "t" * 40, core=core)
    assert raw["homeassistant"] == {"url": "http://supervisor/core", "token": SUPERVISOR_TOKEN}
    settings = load_settings(raw)
    events = [o for o in build_outputs(settings) if o.name == "ha_events"]
    assert len(events) == 1
    assert SUPERVISOR_TOKEN not in repr(events[0])


def test_the_api_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    token = api_token(tmp_path)
    assert len(token) >= 32
    assert api_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "api_token").stat().st_mode) == 0o600
    (tmp_path / "api_token").write_text("short\n")  # damaged: a new one
    assert api_token(tmp_path) not in ("short", token)


def test_discovery_message_follows_the_contract() -> None:
    # docs/interfaces.md: {"service": "face_watchlist", "config": {"host", "port", "token"}}
    message = discovery_message(INFO, "secret-token")
    assert message == {
        "service": "face_watchlist",
        "config": {"host": "a0d7b954-face-watchlist", "port": 8099, "token": "secret-token"},
    }
    contract = (ROOT / "docs/interfaces.md").read_text()
    assert '"service": "face_watchlist"' in contract
    for key in message["config"]:
        assert f'"{key}"' in contract


# the run script as the container starts it -------------------------------------------------------


@pytest.fixture
def broker_port(tmp_path: Path) -> Iterator[int]:
    with auth_broker(tmp_path) as port:
        yield port


@pytest.fixture
async def supervisor(broker_port: int) -> AsyncIterator[FakeSupervisor]:
    fake = FakeSupervisor(mqtt_port=broker_port, ingress_port=free_port())
    await fake.start()
    yield fake
    await fake.stop()


def _start(
    data: Path, supervisor: FakeSupervisor, token: str | None = SUPERVISOR_TOKEN
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SUPERVISOR_TOKEN"}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(ROOT / "addon"),
        FACE_WATCHLIST_ADDON_DATA=str(data),
        FACE_WATCHLIST_SUPERVISOR=supervisor.url,
    )
    if token:
        env["SUPERVISOR_TOKEN"] = token
    # with-contenv (the shebang) only restores the container's environment, which env= gives here
    return subprocess.Popen(
        ["sh", str(RUN_SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


async def _finish(proc: subprocess.Popen[str], stop: bool = True) -> tuple[int, str]:
    if stop and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    return proc.returncode, out


async def test_run_script_starts_the_service_with_the_supervisors_broker(
    tmp_path: Path, model_dir: Path, supervisor: FakeSupervisor, broker_port: int
) -> None:
    data = tmp_path / "data"
    seed_data(data, model_dir, default_options())
    with Watcher(broker_port) as watcher:
        proc = _start(data, supervisor)
        try:
            await wait_health(supervisor.ingress_port, 120, proc)
            # anonymous clients are refused: online means it logged in with the handed credentials
            watcher.wait_for("online", 30)
            for _ in range(100):
                if supervisor.discovery:
                    break
                await asyncio.sleep(0.1)
            token = (data / "api_token").read_text().strip()
            assert supervisor.discovery == [
                {
                    "service": "face_watchlist",
                    "config": {"host": supervisor.hostname, "port": supervisor.ingress_port, "token": token},
                }
            ]
            assert {"GET /services/mqtt", "GET /addons/self/info", "GET /core/api/"} <= set(supervisor.calls)
            base = f"http://127.0.0.1:{supervisor.ingress_port}/api/status"
            async with aiohttp.ClientSession() as http:
                async with http.get(base) as response:
                    assert response.status == 401, "outside ingress the API needs the token"
                async with http.get(base, headers={"Authorization": f"Bearer {token}"}) as response:
                    assert response.status == 200
                    assert (await response.json())["mqtt"] == "connected"
        finally:
            code, out = await _finish(proc)
        assert code == 0, out
        watcher.wait_for("offline", 10)
    assert "MQTT broker from the Supervisor: 127.0.0.1" in out
    assert MQTT_PASSWORD not in out, "secrets must not reach the log"
    assert token not in out
    assert (data / "gallery.sqlite3").exists(), "state lives under /data"


async def test_a_broker_set_by_the_user_wins(
    tmp_path: Path, model_dir: Path, supervisor: FakeSupervisor, broker_port: int
) -> None:
    supervisor.mqtt_answer = (400, {"result": "error", "message": "No mqtt service"})
    data = tmp_path / "data"
    mqtt = {"host": "127.0.0.1", "port": broker_port, "username": MQTT_USER, "password": MQTT_PASSWORD}
    seed_data(data, model_dir, default_options(mqtt=mqtt))
    with Watcher(broker_port) as watcher:
        proc = _start(data, supervisor)
        try:
            await wait_health(supervisor.ingress_port, 120, proc)
            watcher.wait_for("online", 30)
        finally:
            code, out = await _finish(proc)
    assert code == 0, out
    assert "GET /services/mqtt" not in supervisor.calls


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no_token", "SUPERVISOR_TOKEN is not set"),
        ("no_mqtt", "No mqtt service"),
        ("bad_option", "faces"),
        ("bad_json", "options.json: not valid JSON"),
    ],
)
async def test_start_up_problems_are_one_clear_line(
    tmp_path: Path, model_dir: Path, supervisor: FakeSupervisor, case: str, says: str
) -> None:
    data = tmp_path / "data"
    options = default_options(faces={"threads": 0}) if case == "bad_option" else default_options()
    seed_data(data, model_dir, options)
    if case == "bad_json":
        (data / "options.json").write_text("{not json")
    if case == "no_mqtt":
        supervisor.mqtt_answer = (400, {"result": "error", "message": "No mqtt service"})
    proc = _start(data, supervisor, token=None if case == "no_token" else SUPERVISOR_TOKEN)
    code, out = await _finish(proc, stop=False)
    assert code == 1, out
    assert says in out
    assert "Traceback" not in out
    assert not supervisor.discovery


def test_options_json_is_what_the_service_reads(tmp_path: Path) -> None:
    # the Supervisor writes options.json from config.yaml's options; the same file must load
    from face_watchlist.config import load_settings

    options = json.loads(json.dumps(default_options()))
    settings = load_settings(
        service_config(options, MqttService("h", 1883, None, None), INFO, tmp_path, "x" * 40)
    )
    assert settings.data_dir == tmp_path
    assert settings.model_dir == tmp_path / "models"
    assert settings.pipeline.pack == "opencv-zoo"
    assert settings.web["port"] == 8099
