"""What the add-on meets under Home Assistant OS, made small: a fake Supervisor (aiohttp, the few
endpoints the add-on calls) and a Mosquitto that refuses anonymous clients, so a service that
connects must have used the credentials the Supervisor handed it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from face_watchlist.addon_options import derive
from face_watchlist.demo import free_port

SUPERVISOR_TOKEN = "supervisor-token-for-tests"
MQTT_USER, MQTT_PASSWORD = "addons", "mqtt-password-from-the-supervisor"
PACK_FILES = (
    "face_detection_yunet_2023mar_int8bq.onnx",
    "face_recognition_sface_2021dec_fp32.onnx",
)


def wait_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.05)


@contextlib.contextmanager
def auth_broker(tmp: Path) -> Iterator[int]:
    """Mosquitto on a free port that accepts only MQTT_USER / MQTT_PASSWORD."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    port = free_port()
    users = tmp / "mosquitto.passwd"
    subprocess.run(
        [passwd, "-b", "-c", str(users), MQTT_USER, MQTT_PASSWORD], check=True, capture_output=True
    )
    users.chmod(0o600)
    conf = tmp / "mosquitto.conf"
    # as root, Mosquitto drops to its own user, which cannot read a private password file here
    as_root = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {users}\n"
        f"persistence false\n{as_root}"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 5, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@dataclass
class FakeSupervisor:
    """/services/mqtt, /addons/self/info, /discovery and /core/api/, each checking the bearer token."""

    mqtt_port: int
    ingress_port: int
    hostname: str = "a0d7b954-face-watchlist"
    mqtt_answer: tuple[int, dict[str, Any]] | None = None  # override: (status, body)
    calls: list[str] = field(default_factory=list)
    discovery: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorised(self, request: web.Request) -> bool:
        self.calls.append(f"{request.method} {request.path}")
        return request.headers.get("Authorization") == f"Bearer {SUPERVISOR_TOKEN}"

    async def _mqtt(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"result": "error", "message": "unauthorized"}, status=401)
        if self.mqtt_answer is not None:
            status, body = self.mqtt_answer
            return web.json_response(body, status=status)
        data = {
            "host": "127.0.0.1",
            "port": self.mqtt_port,
            "ssl": False,
            "protocol": "3.1.1",
            "username": MQTT_USER,
            "password": MQTT_PASSWORD,
            "addon": "core_mosquitto",
        }
        return web.json_response({"result": "ok", "data": data})

    async def _info(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"result": "error"}, status=401)
        data = {"slug": "face_watchlist", "hostname": self.hostname, "ingress_port": self.ingress_port}
        return web.json_response({"result": "ok", "data": data})

    async def _discovery(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"result": "error"}, status=401)
        self.discovery.append(await request.json())
        return web.json_response({"result": "ok", "data": {"uuid": uuid.uuid4().hex}})

    async def _core(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "unauthorized"}, status=401)
        return web.json_response({"message": "API running."})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/services/mqtt", self._mqtt)
        app.router.add_get("/addons/self/info", self._info)
        app.router.add_post("/discovery", self._discovery)
        app.router.add_get("/core/api/", self._core)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def default_options(**changes: dict[str, Any]) -> dict[str, Any]:
    """What the Supervisor writes to options.json for a fresh install: config.yaml's defaults."""
    options, _ = derive()
    for block, values in changes.items():
        options[block] = {**options.get(block, {}), **values}
    return options


def seed_data(data: Path, model_dir: Path, options: dict[str, Any]) -> None:
    """/data as the Supervisor leaves it, with the default pack already fetched (a second start)."""
    (data / "models").mkdir(parents=True)
    for name in PACK_FILES:
        for suffix in ("", ".json"):
            shutil.copyfile(model_dir / f"{name}{suffix}", data / "models" / f"{name}{suffix}")
    (data / "options.json").write_text(json.dumps(options))


class Watcher:
    """Collects the service's retained availability from the broker (as the integration would)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watcher:
        sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        self._proc = subprocess.Popen(
            [
                sub,
                "-p",
                str(self.port),
                "-u",
                MQTT_USER,
                "-P",
                MQTT_PASSWORD,
                "-t",
                "face_watchlist/available",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.seen.append(line.strip())

    def wait_for(self, value: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while value not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {value!r} on face_watchlist/available (saw {self.seen})")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(5)


async def wait_health(port: int, timeout: float, proc: subprocess.Popen[Any]) -> float:
    """Seconds until GET /api/health answers 200 (MQTT connected); fails early if proc dies."""
    start = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/api/health") as response:
                    if response.status == 200:
                        return time.monotonic() - start
            if proc.poll() is not None:
                raise AssertionError(f"the add-on exited with {proc.returncode} before it was healthy")
            if time.monotonic() - start > timeout:
                raise AssertionError(f"/api/health not 200 within {timeout} s")
            await asyncio.sleep(0.2)
