"""Every HTTP route fuzzed through its own OpenAPI document (schemathesis), on the real app over
real HTTP with a valid token, a real store in a temporary folder and the real models: whatever
the request, valid or not, the answer is never a server error and every error is the documented
`{"error", "message"}` JSON. 25 requests per route in the normal suite, 1,000 with
`FACE_WATCHLIST_FUZZ=long` (see tests/fuzzing.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings

from face_watchlist import __version__
from face_watchlist.config import load_settings
from face_watchlist.faces.images import decode_image
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.records import Evidence
from face_watchlist.gallery.store import Store
from face_watchlist.service import Service
from face_watchlist.web.app import make_app, operations
from face_watchlist.web.schemas import SCHEMAS
from face_watchlist.web.spec import document
from fuzzing import examples
from web_rig import AUTH, TOKEN

KNN = Path(__file__).parent / "data" / "faces" / "face_recognition_knn"
# the live stream never ends: it has its own test (test_web_api.py::test_the_stream_pushes_reviews)
SCHEMA = schemathesis.openapi.from_dict(document(operations(), __version__, SCHEMAS)).exclude(
    path="/api/stream"
)
# valid requests and invalid ones (wrong types, missing fields, out-of-range values)
SCHEMA.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


class AppThread:
    """The app served on its own event loop in a thread (schemathesis calls it synchronously),
    seeded with a list, enrolled people and a match with evidence so ids 1-3 exist."""

    def __init__(self, data: Path, pipeline: FacePipeline, model_dir: Path) -> None:
        self.data, self.pipeline, self.model_dir = data, pipeline, model_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # reported to the fixture instead of dying silently
            self.failed = err
            self.ready.set()

    async def _main(self) -> None:
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        store = Store(self.data)
        settings_ = load_settings(
            {"data_dir": str(self.data), "faces": {"model_dir": str(self.model_dir)}, "web": {"token": TOKEN}}
        )
        gallery = Gallery(store, PACKS[settings_.pipeline.pack])
        watch_list = store.create_list("visitors")
        enroll.Enroller(gallery, self.pipeline, settings_.gate, "enrol").run(
            enroll.folder_jobs(KNN / "enroll"), watch_list
        )
        service = Service(settings_, self.pipeline, gallery)
        probe = (KNN / "probe" / "obama1.jpg").read_bytes()
        (face,) = self.pipeline.analyse(decode_image(probe))
        person = store.people("visitors")[0]
        service.records.add(
            event_id="1.0-fuzz",
            camera="front_door",
            result="match",
            attempts=1,
            person_id=person.id,
            list_id=watch_list.id,
            score=0.7,
            margin=0.3,
            false_match_rate=1e-6,
            review_state="pending_review",
            evidence=Evidence(probe, face.detection.box, face.embedding, gallery.spec.name),
        )
        runner = web.AppRunner(make_app(service, TOKEN), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.ready.set()
        try:
            await self.stop.wait()
        finally:
            await runner.cleanup()
            store.close()

    def __enter__(self) -> AppThread:
        self.thread.start()
        assert self.ready.wait(120), "the app did not start"
        if self.failed:
            raise self.failed
        return self

    def __exit__(self, *_: object) -> None:
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def served(pipeline: FacePipeline, model_dir: Path) -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory() as folder,
        AppThread(Path(folder) / "data", pipeline, model_dir) as app,
    ):
        yield app.url


def _check(case: Any, status: int, content_type: str, body: bytes) -> None:
    request = case.as_curl_command(headers=AUTH)
    assert status != 500, f"server error for {request}: {body[:500]!r}"
    if status >= 400:
        assert content_type.startswith("application/json"), (request, status, body[:200])
        error = json.loads(body)
        if case.path == "/api/health" and status == 503:  # degraded: no broker in this test
            assert error["status"] == "degraded"
            return
        assert set(error) == {"error", "message"}, (request, error)
        assert error["error"] != "internal", (request, error)


@SCHEMA.parametrize()
@settings(
    max_examples=examples(25, 1000),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)
def test_no_request_makes_a_server_error(case: Any, served: str) -> None:
    # requests directly: schemathesis' own transport trips over urllib3-future (a dependency of
    # homeassistant-api that replaces urllib3), the request it builds is the same
    response = requests.request(**case.as_transport_kwargs(base_url=served, headers=AUTH), timeout=120)
    _check(case, response.status_code, response.headers.get("Content-Type", ""), response.content)


# --- what the fuzzing found, kept as plain regression tests --------------------------------------


async def test_crashes_found_by_fuzzing_are_client_errors(
    tmp_path: Path, pipeline: FacePipeline, model_dir: Path
) -> None:
    from web_rig import api

    async with api(tmp_path, pipeline, model_dir) as web:
        c = web.client
        await c.post("/api/lists", json={"name": "registry"}, headers=AUTH)
        person = await c.post("/api/people", json={"display_name": "A", "list": "registry"}, headers=AUTH)
        assert person.status == 201
        found = [
            # ids beyond SQLite's 64-bit integers (OverflowError in the query)
            c.get("/api/people/9223372036854775808", headers=AUTH),
            c.delete("/api/lists/18446744073709551616", headers=AUTH),
            c.patch("/api/people/9223372036854775808", json={}, headers=AUTH),
            c.post("/api/lists", json={"name": "x", "threshold": 1e400}, headers=AUTH),  # infinity
            c.get("/api/decisions", params={"since": "nan"}, headers=AUTH),
            # a multipart body without a boundary, and one with a control character in a part header
            c.post("/api/imports", data=b"x", headers={**AUTH, "Content-Type": "multipart/form-data"}),
            c.post(
                "/api/people/1/photos", data=b"x", headers={**AUTH, "Content-Type": "multipart/form-data"}
            ),
            c.post(
                "/api/imports",
                data=b'--b\r\nContent-Disposition: form-data; name="\x08"\r\n\r\nnull\r\n--b--\r\n',
                headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"},
            ),
        ]
        for request in found:
            response = await request
            body = await response.json()
            assert response.status == 400, body
            assert body["error"] == "bad_request"
        # a time beyond datetime's range (year 9999) is simply "no limit", not an error
        response = await c.get("/api/audit", params={"since": "253402300800.0"}, headers=AUTH)
        assert (response.status, await response.json()) == (200, {"items": []})
        response = await c.get("/api/audit", params={"until": "1e300"}, headers=AUTH)
        assert response.status == 200
