"""`face-watchlist addon run|schema`: the Home Assistant add-on's entry point and its config.yaml sync."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from face_watchlist.config import Settings, load_settings, read_config
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.cache import ModelCache
from face_watchlist.faces.pipeline import get_pack
from face_watchlist.supervisor import (
    DEFAULT_INGRESS_PORT,
    SUPERVISOR_URL,
    AddonInfo,
    Supervisor,
    SupervisorError,
    api_token,
    discovery_message,
    service_config,
    user_broker,
    wait_and_announce,
)

LOG = logging.getLogger("face_watchlist.addon")
DATA_ENV, SUPERVISOR_ENV = "FACE_WATCHLIST_ADDON_DATA", "FACE_WATCHLIST_SUPERVISOR"


async def _addon_info(supervisor: Supervisor) -> AddonInfo:
    try:
        return await supervisor.addon_info()
    except SupervisorError as err:  # not fatal: the container's hostname is the add-on's
        LOG.warning("%s; assuming hostname %s and port %d", err, socket.gethostname(), DEFAULT_INGRESS_PORT)
        return AddonInfo(socket.gethostname(), DEFAULT_INGRESS_PORT)


def ensure_pack(settings: Settings) -> None:
    """The chosen pack in /data/models: fetched and sha256-verified on first start, checked after."""
    spec = get_pack(settings.pipeline.pack)
    if not spec.commercial_use:
        LOG.warning("model pack %s: %s", spec.name, spec.licence)
    written = ModelCache(settings.model_dir).install(spec, log=LOG.info)
    LOG.info("model pack %s %s", spec.name, "installed" if written else "verified")


async def run_addon(data_dir: Path, supervisor_url: str, supervisor_token: str | None) -> None:
    from face_watchlist.service import open_service

    if not supervisor_token:
        raise FaceWatchlistError(
            "SUPERVISOR_TOKEN is not set: `addon run` runs inside the Home Assistant add-on "
            "(elsewhere use `face-watchlist run --config FILE`)"
        )
    options = read_config(data_dir / "options.json")
    token = api_token(data_dir)
    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session, supervisor_token, supervisor_url)
        info = await _addon_info(supervisor)
        if user_broker(options):
            mqtt = None
            LOG.info("MQTT broker from the configuration: %s", options["mqtt"]["host"])
        else:
            mqtt = await supervisor.mqtt_service()
            LOG.info("MQTT broker from the Supervisor: %s:%d", mqtt.host, mqtt.port)
        core = (f"{supervisor_url.rstrip('/')}/core", supervisor_token)
        settings = load_settings(service_config(options, mqtt, info, data_dir, token, core=core))
        await asyncio.to_thread(ensure_pack, settings)
        if await supervisor.core_running():
            LOG.info("Home Assistant Core's API answers through the Supervisor")
        service, store = open_service(settings)  # the store's connection belongs to this thread
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        health = f"http://127.0.0.1:{info.ingress_port}/api/health"
        announce = asyncio.create_task(
            wait_and_announce(supervisor, discovery_message(info, token), health, stop)
        )
        try:
            await service.run(stop)
        finally:
            announce.cancel()
            store.close()


def cmd_addon_run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_addon(args.addon_data, args.supervisor, os.environ.get("SUPERVISOR_TOKEN")))
    return 0


def cmd_addon_schema(args: argparse.Namespace, settings: Settings) -> int:
    from face_watchlist.addon_options import generated_block, write_config

    if args.write is None:
        print(generated_block(), end="")
    else:
        print(f"{args.write}: {'updated' if write_config(args.write) else 'already in sync'}")
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    addon = add("addon", lambda a, s: 0, "the Home Assistant add-on")
    asub = addon.add_subparsers(dest="addon_command", required=True)
    p = add("run", cmd_addon_run, "start under the Supervisor: options.json, MQTT, discovery, ingress", asub)
    p.add_argument(
        "--data",
        dest="addon_data",
        type=Path,
        default=Path(os.environ.get(DATA_ENV, "/data")),
        help=f"the add-on's persistent folder with options.json (default ${DATA_ENV} or /data)",
    )
    p.add_argument(
        "--supervisor",
        default=os.environ.get(SUPERVISOR_ENV, SUPERVISOR_URL),
        help=f"the Supervisor's API (default ${SUPERVISOR_ENV} or {SUPERVISOR_URL})",
    )
    p = add("schema", cmd_addon_schema, "config.yaml's options and schema, derived from the service's", asub)
    p.add_argument(
        "--write", type=Path, metavar="CONFIG_YAML", help="rewrite the generated part of this file"
    )
