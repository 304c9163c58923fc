"""Attacks on the entry points named in docs/threat-model.md, on the real app, store and models:
names from clients never become paths, archives cannot escape or explode, oversized requests and
image bombs are refused from their headers, no request makes the service fetch an address of the
caller's choosing, secrets stay out of logs, errors and status, the token is compared in
constant time and ingress headers are trusted only from the Supervisor's proxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import io
import logging
import os
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from aiohttp import web as aioweb

from face_watchlist.config import load_settings
from face_watchlist.demo import free_port
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.client import FrigateClient
from face_watchlist.frigate.simulator import publish_lifecycle
from face_watchlist.web import auth
from face_watchlist.web.app import make_app, operations
from face_watchlist.web.schemas import SCHEMAS
from face_watchlist.web.spec import MAX_JSON_BYTES, document
from service_rig import rig
from test_service_faults import BOX, OBAMA, clients
from web_rig import AUTH, JOHNS, TOKEN, Api, api

SALLEY = (JOHNS / "John_Salley" / "001.jpg").read_bytes()


@pytest.fixture
async def web(tmp_path: Path, pipeline: FacePipeline, model_dir: Path) -> AsyncIterator[Api]:
    async with api(tmp_path, pipeline, model_dir) as running:
        yield running


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


async def _person(web: Api, name: str = "John Salley") -> int:
    c = web.client
    if not await (await c.get("/api/lists", headers=AUTH)).json():
        await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    person = await _json(
        await c.post("/api/people", json={"display_name": name, "list": "registry"}, headers=AUTH), 201
    )
    return int(person["id"])


def _photo_form(data: bytes, filename: str, content_type: str = "image/jpeg") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("photo", data, filename=filename, content_type=content_type)
    return form


def _escaped(root: Path, marker: str) -> list[Path]:
    """Files named after `marker` anywhere around the test's folder (where a traversal would land)."""
    return [p for p in root.parent.rglob(f"*{marker}*")]


# --- uploads and imports: client-chosen names never become paths ---------------------------------


async def test_an_uploaded_file_name_never_becomes_a_path(web: Api, tmp_path: Path) -> None:
    person_id = await _person(web)
    names = ["../../../../escape-upload.jpg", "..\\..\\escape-upload.jpg", "/tmp/escape-upload.jpg"]
    for number, name in enumerate(names):
        # a different photo each time (one pixel row cut) so none is refused as a duplicate
        data = SALLEY if number == 0 else SALLEY[: -number * 7] + SALLEY[-2:]
        response = await web.client.post(
            f"/api/people/{person_id}/photos", data=_photo_form(data, name), headers=AUTH
        )
        assert response.status in (201, 409, 422), await response.text()
    kept = [row["path"] for row in web.store.db.execute("SELECT path FROM photos").fetchall()]
    assert kept, "the first upload was enrolled"
    for relative in kept:  # stored under the person, named by the photo's hash
        person, name = relative.split("/")
        assert person == str(person_id) and len(name.split(".")[0]) == 64  # noqa: PT018
    assert _escaped(tmp_path, "escape-upload") == []
    assert not Path("/tmp/escape-upload.jpg").exists()


async def _import(web: Api, archive: bytes, csv: bytes | None = None) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("list", "registry")
    if csv is not None:
        form.add_field("csv", csv, filename="registry.csv", content_type="text/csv")
    form.add_field("photos", archive, filename="registry.zip", content_type="application/zip")
    response = await web.client.post("/api/imports", data=form, headers=AUTH)
    if response.status != 202:
        return dict(await response.json(), status=response.status)
    job = await response.json()
    async with asyncio.timeout(120):
        while job["state"] in ("queued", "running"):
            await asyncio.sleep(0.2)
            job = await _json(await web.client.get(f"/api/imports/{job['id']}", headers=AUTH), 200)
    return dict(job)


async def test_registry_zips_cannot_escape_or_explode(web: Api, tmp_path: Path) -> None:
    await _json(await web.client.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "registry.csv",
            "id,name,photo\n"
            "R1,John Salley,a.jpg\n"
            "R2,Slip,../escape-slip.jpg\n"
            "R3,Absolute,/etc/passwd\n"
            "R4,Bomb,bomb.jpg\n"
            "R5,Drive,C:\\escape-slip.jpg\n",
        )
        z.writestr("a.jpg", SALLEY)
        z.writestr("../escape-slip.jpg", SALLEY)  # a zip-slip member: never extracted anywhere
        z.writestr("bomb.jpg", b"\xff\xd8" + bytes(19 << 20))  # 19 MB of zeros: ~20 KB deflated
    job = await _import(web, archive.getvalue())
    assert job["state"] == "done", job
    assert job["counts"] == {"enrolled": 1, "skipped": 1}
    assert [e.split(":")[0] for e in job["errors"]] == ["line 3", "line 4", "line 6"]
    (bomb,) = [r for r in job["rows"] if r["status"] == "skipped"]
    assert "refused (expands to" in bomb["reason"]
    assert _escaped(tmp_path, "escape-slip") == []
    assert [p.external_id for p in web.store.people("registry")] == ["R1"]


async def test_a_registry_csv_that_expands_too_far_is_refused(web: Api) -> None:
    await _json(await web.client.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("registry.csv", b"id,name,photo\n" + b"a" * (21 << 20))
    job = await _import(web, archive.getvalue())
    assert (job["status"], job["error"]) == (413, "too_large")
    assert await web.client.get("/api/health") is not None


async def test_oversized_requests_are_refused_and_the_server_carries_on(web: Api) -> None:
    c = web.client
    huge_json = b'{"name": "' + b"x" * MAX_JSON_BYTES + b'"}'
    response = await c.post(
        "/api/lists", data=huge_json, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert (await _json(response, 413))["error"] == "too_large"
    person_id = await _person(web)
    big_photo = SALLEY + bytes((20 << 20) + 1)
    url = f"/api/people/{person_id}/photos"
    response = await c.post(url, data=_photo_form(big_photo, "a.jpg"), headers=AUTH)
    assert (await _json(response, 413))["error"] == "too_large"
    form = aiohttp.FormData()
    form.add_field("list", "registry")
    form.add_field("csv", b"id,name,photo\n" + b"a" * (20 << 20), filename="r.csv", content_type="text/csv")
    assert (await _json(await c.post("/api/imports", data=form, headers=AUTH), 413))["error"] == "too_large"
    # a request line or header beyond aiohttp's limits is refused before any handler runs
    assert (await c.get("/api/people", params={"q": "x" * 20000}, headers=AUTH)).status in (400, 414)
    assert (await c.get("/api/status", headers={**AUTH, "X-Padding": "x" * 20000})).status in (400, 431)
    assert (await c.get("/api/status", headers=AUTH)).status == 200


def _png_claiming(width: int, height: int) -> bytes:
    """A small, valid PNG whose header claims width x height (a decompression bomb's header)."""
    rows = b"".join(b"\x00" + bytes(3 * 8) for _ in range(8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


async def test_a_png_decompression_bomb_is_refused_from_its_header(web: Api) -> None:
    person_id = await _person(web)
    bomb = _png_claiming(50_000, 50_000)  # 2.5 gigapixels, 7.5 GB decoded, 100 bytes sent
    response = await web.client.post(
        f"/api/people/{person_id}/photos", data=_photo_form(bomb, "b.png", "image/png"), headers=AUTH
    )
    assert (await _json(response, 413))["error"] == "too_large"


# --- SSRF: the service fetches only from the configured Frigate -----------------------------------

_URLISH = ("url", "uri", "href", "link", "host", "address", "endpoint")


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def _field_names(schema: dict[str, Any], components: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    schema = _resolve(schema, components)
    found = []
    for name, sub in schema.get("properties", {}).items():
        found.append((name, _resolve(sub, components)))
        found += _field_names(sub, components)
    if "items" in schema:
        found += _field_names(schema["items"], components)
    return found


def test_no_request_field_is_an_address() -> None:
    doc = document(operations(), "test", SCHEMAS)
    components = doc["components"]["schemas"]
    fields: list[tuple[str, str, dict[str, Any]]] = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            fields += [(where, p["name"], p["schema"]) for p in op["parameters"]]
            for content in op.get("requestBody", {}).get("content", {}).values():
                fields += [(where, n, s) for n, s in _field_names(content["schema"], components)]
    assert len(fields) > 20
    for where, name, schema in fields:
        assert not any(word in name.lower() for word in _URLISH), (where, name)
        assert schema.get("format") not in ("uri", "url", "hostname", "ipv4", "ipv6"), (where, name)


async def test_enrol_from_an_event_fetches_only_from_the_configured_frigate(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    hits: list[str] = []

    async def record(request: aioweb.Request) -> aioweb.Response:
        hits.append(request.path_qs)
        return aioweb.Response(body=SALLEY, content_type="image/jpeg")

    elsewhere = aioweb.Application()
    elsewhere.router.add_route("*", "/{tail:.*}", record)
    runner = aioweb.AppRunner(elsewhere)
    await runner.setup()
    evil_port = free_port()
    await aioweb.TCPSite(runner, "127.0.0.1", evil_port).start()
    port = free_port()
    try:
        async with (
            rig(tmp_path, broker, pipeline, model_dir, web_port=port, web_token=TOKEN) as r,
            aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=AUTH) as http,
        ):
            async with asyncio.timeout(20):
                while True:
                    try:
                        if (await http.get("/api/health")).status == 200:
                            break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.1)
            person = await (
                await http.post("/api/people", json={"display_name": "Obama", "list": "visitors"})
            ).json()
            url = f"/api/people/{person['id']}/photos/from_event"
            evil = f"127.0.0.1:{evil_port}"
            for event_id in (
                "../../../api/config",
                "..",
                "x/../../../api/config",
                f"http://{evil}/x",
                f"//{evil}/x",
                f"@{evil}",
                f"{evil}",
                "%2e%2e%2fconfig",
                "a?b=http://" + evil,
                "a#b",
                "a\\..\\..\\b",
            ):
                response = await http.post(url, json={"event_id": event_id})
                body = await response.json()
                assert response.status == 502, (event_id, body)
                assert body["error"] == "frigate_error"
            response = await http.post(url, json={"event_id": "1", "url": f"http://{evil}/x.jpg"})
            assert (await response.json())["message"] == "body: unknown field(s) url"
            assert hits == []
            assert r.sim.requests["config"] <= 1  # the service's own start-up look, nothing more
    finally:
        await runner.cleanup()


# --- secrets ----------------------------------------------------------------------------------------

MQTT_PASSWORD = "mqtt-pw-7f3a9c2e"
FRIGATE_PASSWORD = "frigate-sim-password"  # the simulator's, set by the rig
KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize(
    "raw",
    [
        {"web": {"token": "short-secret"}},
        {"web": {"token": ["short-secret"]}},
        {"mqtt": {"password": ["short-secret"]}},
        {"frigate": {"password": {"short-secret": 1}}},
        {"security": {"encryption_key": "short-secret-not-base64"}},
        {"security": {"encryption_key": KEY[:-4] + "short-secret"[:4]}},
    ],
)
def test_configuration_errors_name_the_key_not_the_secret(raw: dict[str, Any]) -> None:
    with pytest.raises(FaceWatchlistError) as caught:
        load_settings(raw)
    message = str(caught.value)
    block = next(iter(raw))
    assert f"['{block}']" in message
    assert "short-secret" not in message and KEY[:-4] not in message  # noqa: PT018


async def test_secrets_stay_out_of_logs_errors_status_and_mqtt(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = (MQTT_PASSWORD, FRIGATE_PASSWORD, TOKEN)
    port = free_port()
    seen: list[str] = []
    options = {"mqtt": {"username": "fw", "password": MQTT_PASSWORD}}
    async with (
        rig(tmp_path, broker, pipeline, model_dir, web_port=port, web_token=TOKEN, options=options) as r,
        clients(broker) as (frigate, watcher),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        event = r.sim.add_event("1.0-secret", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", event, updates=0)
        assert (await watcher.settled({"1.0-secret"}))["1.0-secret"]["person"] == "obama"
        for path in (
            "/api/health",
            "/api/status",
            "/api/settings",
            "/api/lists",
            "/api/people",
            "/api/decisions",
            "/api/audit",
            "/api/imports",
            "/api/openapi.json",
            "/api/people/abc",
            "/api/nowhere",
        ):
            for headers in (AUTH, {"Authorization": "Bearer wrong"}, {}):
                response = await http.get(path, headers=headers)
                seen.append(f"{path} {response.status} {dict(response.headers)} {await response.text()}")
        # a Frigate login refused: the error names the user, not the password tried
        wrong = "wrong-frigate-pw-31f"
        async with aiohttp.ClientSession() as session:
            client = FrigateClient(session, r.sim.base_url, "admin", wrong, retries=0)
            with pytest.raises(FaceWatchlistError) as refused:
                await client.snapshot("1.0-secret")
            seen.append(str(refused.value))
            assert wrong not in str(refused.value)
    # everything retained on the broker: status, availability, last decisions, discovery
    async with aiomqtt.Client("127.0.0.1", broker, identifier="reader") as reader:
        await reader.subscribe("#")
        with contextlib.suppress(TimeoutError):  # retained messages come at once; then silence
            async with asyncio.timeout(1.5):
                async for message in reader.messages:
                    seen.append(f"{message.topic.value} {message.payload!r}")
    seen += [m["event_id"] + str(m) for m in watcher.decisions]
    assert len(seen) > 30
    logs = caplog.text
    assert "HTTP API on" in logs  # the service did log
    for secret in (*secrets, wrong):
        assert secret not in logs, f"{secret} in the log"
        for text in seen:
            assert secret not in text, text
    assert any(s.startswith("/api/settings 200") and "**redacted**" in s for s in seen)


# --- authentication ----------------------------------------------------------------------------------


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tries = [TOKEN, TOKEN[:-1] + "x", "x" + TOKEN[1:], TOKEN[:4], TOKEN + "x", ""]
    answers = [auth.identify("10.0.0.9", {"Authorization": f"Bearer {t}"}, TOKEN) for t in tries]
    assert [a is not None for a in answers] == [True, False, False, False, False, False]
    # every attempt, right or wrong, long or short, went through the constant-time comparison
    assert compared == [(t.encode(), TOKEN.encode()) for t in tries]


async def test_ingress_headers_from_elsewhere_are_not_trusted(web: Api) -> None:
    ingress = {"X-Ingress-Path": "/api/hassio_ingress/abc", "X-Remote-User-Name": "admin"}
    for spoof in (
        {},
        {"X-Forwarded-For": auth.INGRESS_PROXY},
        {"X-Real-IP": auth.INGRESS_PROXY},
        {"Forwarded": f"for={auth.INGRESS_PROXY}"},
        {"Host": auth.INGRESS_PROXY},
    ):
        for method, path in (("GET", "/api/status"), ("GET", "/api/settings"), ("DELETE", "/api/people/1")):
            response = await web.client.request(method, path, headers={**ingress, **spoof})
            assert response.status == 401, (spoof, path)
    # the same headers from the proxy's address are accepted (the address is what is checked)
    assert auth.identify(auth.INGRESS_PROXY, ingress, None) == auth.Identity("ha:admin")


async def test_the_app_without_a_token_admits_nobody_but_ingress(
    tmp_path: Path, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with api(tmp_path, pipeline, model_dir) as running:
        app = make_app(running.service, None)
        from aiohttp.test_utils import TestClient, TestServer

        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            for header in ("Bearer ", "Bearer None", "Bearer null", f"Bearer {TOKEN}"):
                response = await client.get("/api/status", headers={"Authorization": header})
                assert response.status == 401, header
        finally:
            await client.close()
