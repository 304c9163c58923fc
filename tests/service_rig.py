"""The service under test: a gallery with the knn people enrolled, the Frigate simulator and the
service itself running against a broker on `port` (shared by the service test files)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from face_watchlist.config import load_settings
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import FrigateSimulator
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.outputs.build import build_outputs
from face_watchlist.service import Service

DATA = Path(__file__).parent / "data" / "faces"


@dataclass
class Rig:
    service: Service
    sim: FrigateSimulator
    task: asyncio.Task[None]
    port: int


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    port: int,
    pipeline: FacePipeline,
    model_dir: Path,
    web_port: int = 0,
    web_token: str | None = None,
    options: dict[str, dict[str, Any]] | None = None,  # merged into the option blocks below
    outputs: bool = False,  # the outputs the options ask for, as open_service builds them
    **watch: Any,
) -> AsyncIterator[Rig]:
    store = Store(tmp_path / "data")
    gallery = Gallery(store, PACKS["opencv-zoo"])
    watch_list = store.create_list("visitors")
    enroll.Enroller(gallery, pipeline, load_settings({}).gate, "enrol").run(
        enroll.folder_jobs(DATA / "face_recognition_knn" / "enroll"), watch_list
    )
    sim = FrigateSimulator(auth=True)
    await sim.start()
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "faces": {"model_dir": str(model_dir)},
        "mqtt": {"port": port, "client_id": "fw-test"},
        "web": {"port": web_port, "token": web_token},
        "frigate": {"url": sim.base_url, "username": "admin", "password": "frigate-sim-password"},
        "watch": watch,
    }
    for block, values in (options or {}).items():
        raw[block] = {**raw.get(block, {}), **values}
    settings = load_settings(raw)
    service = Service(settings, pipeline, gallery)
    if outputs:
        service.outputs = build_outputs(settings, lambda d: service.records.evidence(d, "face"))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield Rig(service, sim, task, port)
        assert not task.done(), "the service stopped by itself"
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await sim.stop()
            store.close()
