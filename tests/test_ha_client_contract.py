"""The Home Assistant integration's client (custom_components/face_watchlist/api.py, which has no
Home Assistant imports) and its payload parsers, against the real HTTP API and the real MQTT
payloads: the contract of docs/interfaces.md checked from both sides."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest

from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.outputs.messages import DecisionMessage
from test_web_api import _seed_match
from web_rig import AUTH, JOHNS, TOKEN, Api, api

INTEGRATION = Path(__file__).resolve().parent.parent / "custom_components" / "face_watchlist"


def _load(name: str) -> ModuleType:
    """One of the integration's HA-free modules, loaded by path (its package imports HA)."""
    spec = importlib.util.spec_from_file_location(f"fw_integration_{name}", INTEGRATION / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


client_api, models, const = _load("api"), _load("models"), _load("const")


@pytest.fixture
async def web(tmp_path: Path, pipeline: FacePipeline, model_dir: Path) -> AsyncIterator[Api]:
    async with api(tmp_path, pipeline, model_dir) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def _url(web: Api) -> str:
    return str(web.client.server.make_url("")).rstrip("/")


async def test_health_status_and_auth(web: Api, session: aiohttp.ClientSession) -> None:
    client = client_api.FaceWatchlistClient(session, _url(web), TOKEN)
    health = await client.health()  # degraded (no broker here) answers 503, still accepted
    assert client_api.parse_version(health["version"]) >= client_api.parse_version(const.MIN_SERVICE_VERSION)
    status = models.Status.from_dict(await client.status())
    assert status.instance_id == web.store.instance_id()
    assert status.frigate in ("up", "down", "unknown")
    assert isinstance(status.people_per_list, dict)
    with pytest.raises(client_api.InvalidAuth):
        await client_api.FaceWatchlistClient(session, _url(web), "wrong").status()


async def test_enrol_review_evidence_purge_import_remove(web: Api, session: aiohttp.ClientSession) -> None:
    client = client_api.FaceWatchlistClient(session, _url(web), TOKEN)
    assert (await web.client.post("/api/lists", json={"name": "registry"}, headers=AUTH)).status == 201
    person = await client.create_person("John Savage", "registry", "R-1")
    photo = await client.add_photo(
        person["id"], (JOHNS / "John_Savage" / "001.jpg").read_bytes(), "a.jpg", "image/jpeg"
    )
    assert photo["photo_id"] > 0
    with pytest.raises(client_api.ApiError) as refused:
        await client.add_photo(person["id"], b"\xff\xd8\xff not a picture", "b.jpg", "image/jpeg")
    assert refused.value.status in (415, 422)
    with pytest.raises(client_api.ApiError) as missing:
        await client.create_person("Jane", "no such list")
    assert missing.value.status == 404

    first = await _seed_match(web, JOHNS / "John_Savage" / "002.jpg", person["id"])
    second = await _seed_match(web, JOHNS / "John_Savage" / "003.jpg", person["id"], camera="gate")
    assert (await client.evidence(first, "face"))[:2] == b"\xff\xd8"
    assert (await client.evidence(first, "snapshot"))[:2] == b"\xff\xd8"
    assert (await client.review(first, "reject"))["review_state"] == "rejected"
    with pytest.raises(client_api.ApiError) as again:
        await client.review(first, "confirm")
    assert again.value.status == 409
    confirmed = await client.review(second, "confirm", add_template=True)
    assert confirmed["review_state"] == "confirmed"
    assert "added" in confirmed["template"]

    purge = await client.purge(dry_run=True)
    assert purge["dry_run"] is True
    assert isinstance(purge["removed"], dict)

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("registry.csv", "id,name,photo\nR2,John Simm,b.jpg\n")
        z.writestr("b.jpg", (JOHNS / "John_Simm" / "001.jpg").read_bytes())
    archive.seek(0)
    job = await client.start_import("registry", None, archive, replace=False)
    assert job["state"] in ("queued", "running", "done")
    assert job["list"] == "registry"

    await client.delete_person(person["id"])
    with pytest.raises(client_api.ApiError) as gone:
        await client.delete_person(person["id"])
    assert gone.value.status == 404


def test_the_service_messages_parse() -> None:
    match = DecisionMessage(
        event_id="1718000000.123-abc",
        camera="front door",
        result="match",
        attempts=2,
        faces_seen=2,
        final=False,
        timing_ms={"total_ms": 52.0},
        timestamp=1718000001.5,
        person="Jane Doe",
        person_id=7,
        list="registry",
        list_kind="watch",
        review_state="pending_review",
        score=0.61,
        margin=0.22,
        false_match_rate=1e-5,
    ).recorded(42, has_evidence=True)
    decision = models.Decision.parse(match.payload())
    assert (decision.camera, decision.person_id, decision.decision_id) == ("front door", 7, 42)
    assert decision.has_face
    assert decision.has_snapshot
    assert decision.is_watch_alert
    unknown = DecisionMessage(
        event_id="e2",
        camera="gate",
        result="unknown",
        attempts=1,
        faces_seen=1,
        final=True,
        timing_ms={},
        timestamp=1.0,
    )
    assert models.Decision.parse(unknown.payload()).result == "unknown"
    review = {
        "decision_id": 42,
        "event_id": "e",
        "camera": "front door",
        "person": "Jane Doe",
        "person_id": 7,
        "list": "registry",
        "review_state": "confirmed",
        "reviewer": "office",
        "timestamp": 2.0,
    }
    assert models.Review.parse(json.dumps(review)).review_state == "confirmed"
