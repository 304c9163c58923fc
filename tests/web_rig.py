"""An API client over a real (not running) service: real store, models and gallery in tmp_path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from face_watchlist.config import load_settings
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.service import Service
from face_watchlist.web.app import make_app

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FACES = Path(__file__).parent / "data" / "faces"
JOHNS = FACES / "dlib_johns" / "images"


@dataclass
class Api:
    client: TestClient[Any, Any]
    service: Service
    store: Store


@contextlib.asynccontextmanager
async def api(tmp_path: Path, pipeline: FacePipeline, model_dir: Path, **options: Any) -> AsyncIterator[Api]:
    store = Store(tmp_path / "data")
    settings = load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "faces": {"model_dir": str(model_dir)},
            "web": {"token": TOKEN},
            **options,
        }
    )
    service = Service(settings, pipeline, Gallery(store, PACKS[settings.pipeline.pack]))
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(service, TOKEN)))
    await client.start_server()
    try:
        yield Api(client, service, store)
    finally:
        await client.close()
        store.close()
