"""The HTTP API on a real store, real models and real photos: lists, people, photos, errors,
the OpenAPI document, and that no route but health answers without credentials."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from face_watchlist.faces.pipeline import FacePipeline
from web_rig import AUTH, JOHNS, Api, api


@pytest.fixture
async def web(tmp_path: Path, pipeline: FacePipeline, model_dir: Path) -> AsyncIterator[Api]:
    async with api(tmp_path, pipeline, model_dir) as running:
        yield running


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "0123456789abcdef" if m.group(1) == "job_id" else "1", path)


async def test_every_documented_route_refuses_anonymous_requests(web: Api) -> None:
    doc = await _json(await web.client.get("/api/openapi.json", headers=AUTH), 200)
    assert doc["openapi"].startswith("3.")
    walked = 0
    for path, methods in doc["paths"].items():
        for method in methods:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-wrong-token"},
                {"X-Ingress-Path": "/x"},
            ):
                response = await web.client.request(method.upper(), _concrete(path), headers=headers)
                if path == "/api/health":
                    assert response.status in (200, 503)
                    continue
                body = await response.json()
                assert response.status == 401, (method, path, headers)
                assert body["error"] == "unauthorized"
                walked += 1
    assert walked >= 3 * 20  # every route of the issue is in the document
    assert (await web.client.get("/api/nowhere")).status == 401  # unknown routes do not leak either


async def test_document_describes_the_routes_and_their_errors(web: Api) -> None:
    doc = await _json(await web.client.get("/api/openapi.json", headers=AUTH), 200)
    expected = {
        ("get", "/api/status"),
        ("get", "/api/lists"),
        ("post", "/api/lists"),
        ("patch", "/api/lists/{list_id}"),
        ("delete", "/api/lists/{list_id}"),
        ("get", "/api/people"),
        ("post", "/api/people"),
        ("patch", "/api/people/{person_id}"),
        ("delete", "/api/people/{person_id}"),
        ("post", "/api/people/{person_id}/photos"),
        ("post", "/api/people/{person_id}/photos/from_event"),
        ("get", "/api/decisions"),
        ("get", "/api/decisions/{decision_id}/face.jpg"),
        ("get", "/api/decisions/{decision_id}/snapshot.jpg"),
        ("post", "/api/decisions/{decision_id}/review"),
        ("post", "/api/imports"),
        ("get", "/api/imports/{job_id}"),
        ("get", "/api/audit"),
        ("get", "/api/settings"),
        ("get", "/api/stream"),
    }
    found = {(m, p) for p, methods in doc["paths"].items() for m in methods}
    assert expected <= found
    review = doc["paths"]["/api/decisions/{decision_id}/review"]["post"]
    assert review["requestBody"]["content"]["application/json"]["schema"]["properties"]["action"]["enum"] == [
        "confirm",
        "reject",
    ]
    assert review["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "security" not in doc["paths"]["/api/health"]["get"]


async def test_lists_people_and_memberships(web: Api) -> None:
    c = web.client
    watch = await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    assert (watch["kind"], watch["policy"], watch["people"]) == ("watch", "review_first", 0)
    staff = await _json(
        await c.post("/api/lists", json={"name": "staff", "kind": "known"}, headers=AUTH), 201
    )
    assert staff["policy"] == "immediate"
    dup = await _json(await c.post("/api/lists", json={"name": "staff"}, headers=AUTH), 409)
    assert dup["error"] == "conflict"
    hours = {"name": "gate", "policy": "immediate", "schedule": "mon-fri 07:00-17:00"}
    gate = await _json(await c.post("/api/lists", json=hours, headers=AUTH), 201)
    assert gate["schedule"] == "mon-fri 07:00-17:00"
    bad = await _json(
        await c.patch(f"/api/lists/{gate['id']}", json={"schedule": "weekdays"}, headers=AUTH), 400
    )
    assert "mon-fri" in bad["message"]
    jane = await _json(
        await c.post(
            "/api/people",
            json={"display_name": "Jane Doe", "list": "registry", "external_id": "R-1"},
            headers=AUTH,
        ),
        201,
    )
    assert (jane["lists"], jane["photos"]) == (["registry"], 0)
    # rename, then move from registry to staff
    moved = await _json(
        await c.patch(
            f"/api/people/{jane['id']}", json={"display_name": "Jane Roe", "lists": ["staff"]}, headers=AUTH
        ),
        200,
    )
    assert (moved["display_name"], moved["lists"]) == ("Jane Roe", ["staff"])
    page = await _json(await c.get("/api/people", params={"list": "staff", "q": "roe"}, headers=AUTH), 200)
    assert (page["total"], page["items"][0]["id"]) == (1, jane["id"])
    assert (await _json(await c.get("/api/people", params={"q": "%"}, headers=AUTH), 200))["total"] == 0
    renamed = await _json(
        await c.patch(f"/api/lists/{staff['id']}", json={"name": "employees"}, headers=AUTH), 200
    )
    assert (renamed["name"], renamed["people"]) == ("employees", 1)
    assert (await c.delete(f"/api/lists/{staff['id']}", headers=AUTH)).status == 204
    # the person was on no other list: deleted with it
    await _json(await c.get(f"/api/people/{jane['id']}", headers=AUTH), 404)


async def test_validation_errors_name_the_field(web: Api) -> None:
    c = web.client
    cases = [
        (c.post("/api/lists", json={"name": "x", "kind": "vip"}, headers=AUTH), 400, "body.kind"),
        (c.post("/api/lists", json={"nom": "x"}, headers=AUTH), 400, "body.name: required"),
        (
            c.post("/api/lists", data=b"{", headers={**AUTH, "Content-Type": "application/json"}),
            400,
            "not valid JSON",
        ),
        (c.post("/api/people", json={"display_name": "A", "list": "nope"}, headers=AUTH), 404, "nope"),
        (c.get("/api/people", params={"limit": "many"}, headers=AUTH), 400, "limit"),
        (c.get("/api/people", params={"limit": "100000"}, headers=AUTH), 400, "limit"),
        (c.get("/api/people/abc", headers=AUTH), 400, "person_id"),
        (c.delete("/api/people/999", headers=AUTH), 404, "999"),
        (c.put("/api/lists", headers=AUTH), 405, ""),
    ]
    for request, status, text in cases:
        body = await _json(await request, status)
        assert set(body) == {"error", "message"}
        assert text in body["message"]


async def test_upload_enrols_with_quality_and_refuses_bad_photos(web: Api, tmp_path: Path) -> None:
    c = web.client
    await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    person = await _json(
        await c.post("/api/people", json={"display_name": "John Savage", "list": "registry"}, headers=AUTH),
        201,
    )
    url = f"/api/people/{person['id']}/photos"

    def form(data: bytes, name: str = "photo.jpg") -> aiohttp.FormData:
        f = aiohttp.FormData()
        f.add_field("photo", data, filename=name, content_type="image/jpeg")
        return f

    photo = (JOHNS / "John_Savage" / "001.jpg").read_bytes()
    done = await _json(await c.post(url, data=form(photo), headers=AUTH), 201)
    assert done["quality"]["face_px"] > 32
    # who did it is in the audit log, written by the store in the enrolment's own transaction
    audit = await _json(await c.get("/api/audit", headers=AUTH), 200)
    actions = {(e["action"], e["actor"]) for e in audit["items"]}
    assert {("list.create", "token"), ("person.create", "token"), ("photo.enrol", "token")} <= actions
    assert (await _json(await c.post(url, data=form(photo), headers=AUTH), 409))["error"] == "duplicate"
    assert (await _json(await c.post(url, data=form(b"GIF89a...."), headers=AUTH), 415))[
        "error"
    ] == "unsupported_media_type"
    grey = tmp_path / "grey.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(grey), np.full((300, 300, 3), 128, np.uint8))
    assert (await _json(await c.post(url, data=form(grey.read_bytes(), "g.png"), headers=AUTH), 422))[
        "error"
    ] == "no_face"
    truncated = photo[: len(photo) // 2]
    assert (await _json(await c.post(url, data=form(truncated), headers=AUTH), 422))["error"] == "bad_image"
    bomb = photo[:2] + photo[2:].replace(b"\xff\xc0", b"\xff\xc0", 1)
    header_at = bomb.find(b"\xff\xc0")
    bomb = (
        bomb[: header_at + 5]
        + (30000).to_bytes(2, "big")
        + (30000).to_bytes(2, "big")
        + bomb[header_at + 9 :]
    )
    assert (await _json(await c.post(url, data=form(bomb), headers=AUTH), 413))["error"] == "too_large"
    # the person's page shows the photo with its quality, and its face crop is served
    detail = await _json(await c.get(f"/api/people/{person['id']}", headers=AUTH), 200)
    assert detail["photos"] == 1 and detail["templates"] == 1  # noqa: PT018
    (kept,) = detail["enrolment"]
    face = await c.get(kept["face_url"], headers=AUTH)
    assert face.status == 200 and (await face.read())[:2] == b"\xff\xd8"  # noqa: PT018
    assert (await c.get(kept["url"], headers=AUTH)).status == 200
    # and the gallery matches the person's other photo
    import asyncio

    from face_watchlist.faces.images import decode_image

    other = decode_image((JOHNS / "John_Savage" / "002.jpg").read_bytes())
    faces = await asyncio.to_thread(web.service.pipeline.analyse, other)
    assert web.service.gallery.match(faces[0].embedding).person_id == person["id"]


async def test_settings_are_redacted(tmp_path: Path, pipeline: FacePipeline, model_dir: Path) -> None:
    options = {"mqtt": {"password": "mqtt-secret"}, "frigate": {"password": "frigate-secret"}}
    async with api(tmp_path, pipeline, model_dir, **options) as web:
        response = await web.client.get("/api/settings", headers=AUTH)
        text = await response.text()
        assert response.status == 200
        assert "mqtt-secret" not in text and "frigate-secret" not in text and "s3cret" not in text  # noqa: PT018
        assert (await response.json())["mqtt"]["password"] == "**redacted**"


async def _seed_match(web: Api, photo: Path, person_id: int, camera: str = "front_door") -> int:
    """A recorded match with real evidence: the photo as snapshot, its face box and embedding."""
    import asyncio

    from face_watchlist.faces.images import decode_image
    from face_watchlist.gallery.records import Evidence

    data = photo.read_bytes()
    (face,) = await asyncio.to_thread(web.service.pipeline.analyse, decode_image(data))
    watch_list = web.store.person_lists(person_id)[0]
    record = web.service.records.add(
        event_id=f"{photo.stem}-{camera}",
        camera=camera,
        result="match",
        attempts=1,
        person_id=person_id,
        list_id=watch_list.id,
        score=0.7,
        margin=0.3,
        false_match_rate=1e-6,
        review_state="pending_review",
        evidence=Evidence(data, face.detection.box, face.embedding, web.service.gallery.spec.name),
    )
    return record.id


async def test_decisions_evidence_and_review_feed_back(web: Api) -> None:
    c = web.client
    await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    person = await _json(
        await c.post("/api/people", json={"display_name": "John Savage", "list": "registry"}, headers=AUTH),
        201,
    )
    form = aiohttp.FormData()
    form.add_field("photo", (JOHNS / "John_Savage" / "001.jpg").read_bytes(), filename="a.jpg")
    await _json(await c.post(f"/api/people/{person['id']}/photos", data=form, headers=AUTH), 201)
    first = await _seed_match(web, JOHNS / "John_Savage" / "002.jpg", person["id"])
    second = await _seed_match(web, JOHNS / "John_Savage" / "003.jpg", person["id"], camera="gate")
    web.service.records.add(event_id="x", camera="gate", result="unknown", attempts=1)

    page = await _json(await c.get("/api/decisions", params={"status": "pending_review"}, headers=AUTH), 200)
    assert page["total"] == 2
    assert page["items"][0]["evidence"]["face"] == f"/api/decisions/{second}/face.jpg"
    gate = await _json(
        await c.get("/api/decisions", params={"camera": "gate", "limit": 1}, headers=AUTH), 200
    )
    assert (gate["total"], len(gate["items"]), gate["items"][0]["result"]) == (2, 1, "unknown")
    for kind in ("face.jpg", "snapshot.jpg"):
        image = await c.get(f"/api/decisions/{first}/{kind}", headers=AUTH)
        assert image.status == 200 and image.content_type == "image/jpeg"  # noqa: PT018
    assert (await _json(await c.get("/api/decisions/9999/face.jpg", headers=AUTH), 404))[
        "error"
    ] == "not_found"

    rejections = web.store.counts()["rejections"]
    rejected = await _json(
        await c.post(f"/api/decisions/{first}/review", json={"action": "reject"}, headers=AUTH), 200
    )
    assert (rejected["review_state"], rejected["reviewer"]) == ("rejected", "token")
    assert web.store.counts()["rejections"] == rejections + 1  # the same pairing stops alerting
    again = await _json(
        await c.post(f"/api/decisions/{first}/review", json={"action": "confirm"}, headers=AUTH), 409
    )
    assert "already rejected" in again["message"]

    confirmed = await _json(
        await c.post(
            f"/api/decisions/{second}/review", json={"action": "confirm", "add_template": True}, headers=AUTH
        ),
        200,
    )
    assert confirmed["review_state"] == "confirmed"
    assert confirmed["template"]["added"] is True, confirmed["template"]
    detail = await _json(await c.get(f"/api/people/{person['id']}", headers=AUTH), 200)
    assert detail["photos"] == 2
    assert detail["enrolment"][1]["source"] == f"decision:{second}"
    status = await _json(await c.get("/api/status", headers=AUTH), 200)
    assert status["pending_reviews"] == 0


async def test_the_stream_pushes_reviews(web: Api) -> None:
    import asyncio

    c = web.client
    await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    person = await _json(
        await c.post("/api/people", json={"display_name": "John Savage", "list": "registry"}, headers=AUTH),
        201,
    )
    decision = await _seed_match(web, JOHNS / "John_Savage" / "002.jpg", person["id"])
    stream = await c.get("/api/stream", headers=AUTH)
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert b"event: hello" in await stream.content.readuntil(b"\n\n")
    await _json(
        await c.post(f"/api/decisions/{decision}/review", json={"action": "confirm"}, headers=AUTH), 200
    )
    frame = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    assert frame.startswith(b"event: review\n")
    assert b'"review_state":"confirmed"' in frame
    stream.close()


async def test_registry_import_job_reports_progress_and_rows(web: Api) -> None:
    import asyncio
    import io
    import zipfile

    c = web.client
    await _json(await c.post("/api/lists", json={"name": "registry"}, headers=AUTH), 201)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "registry.csv",
            "id,name,photo\nR1,John Salley,a.jpg\nR2,John Simm,b.jpg\nR3,,c.jpg\n"
            "R4,Nobody,../x.jpg\nR5,Missing,gone.jpg\n",
        )
        z.writestr("a.jpg", (JOHNS / "John_Salley" / "001.jpg").read_bytes())
        z.writestr("b.jpg", (JOHNS / "John_Simm" / "001.jpg").read_bytes())
    form = aiohttp.FormData()
    form.add_field("list", "registry")
    form.add_field("photos", archive.getvalue(), filename="registry.zip", content_type="application/zip")
    job = await _json(await c.post("/api/imports", data=form, headers=AUTH), 202)
    async with asyncio.timeout(60):
        while job["state"] in ("queued", "running"):
            await asyncio.sleep(0.2)
            job = await _json(await c.get(f"/api/imports/{job['id']}", headers=AUTH), 200)
    assert job["state"] == "done", job
    assert (job["total"], job["done"]) == (3, 3)
    assert job["counts"] == {"enrolled": 2, "skipped": 1}
    assert [e.split(":")[0] for e in job["errors"]] == ["line 4", "line 5"]  # empty name, path outside
    (missing,) = [r for r in job["rows"] if r["status"] == "skipped"]
    assert missing["person"] == "Missing" and "gone.jpg" in missing["reason"]  # noqa: PT018
    people = await _json(await c.get("/api/people", params={"list": "registry"}, headers=AUTH), 200)
    assert sorted(p["external_id"] for p in people["items"]) == ["R1", "R2"]  # no empty "Missing" person
    listed = await _json(await c.get("/api/imports", headers=AUTH), 200)
    assert listed[0]["id"] == job["id"] and "rows" not in listed[0]  # noqa: PT018


async def test_ui_is_bundled_and_follows_the_ingress_prefix(web: Api) -> None:
    c = web.client
    page = await c.get("/", headers={"X-Ingress-Path": "/api/hassio_ingress/abc_DEF-123"})
    text = await page.text()
    assert '<base href="/api/hassio_ingress/abc_DEF-123/">' in text
    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    hostile = await (await c.get("/", headers={"X-Ingress-Path": '/x"><script>alert(1)</script>'})).text()
    assert "<script>alert" not in hostile and '<base href="/">' in hostile  # noqa: PT018
    # every script and stylesheet is served by us: no CDN, nothing fetched from elsewhere
    for asset in re.findall(r'(?:src|href)="(ui/[^"]+)"', text):
        assert (await c.get("/" + asset)).status == 200
    for module in ("app.js", "api.js", "dom.js", "pages/review.js", "pages/people.js"):
        source = await (await c.get(f"/ui/{module}")).text()
        assert not re.search(r"https?://", source), module


def test_bench_api_runs_on_a_small_database(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from face_watchlist.cli import main

    assert main(["bench", "api", "--people", "300", "--decisions", "3000", "--requests", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["routes"]["people, page 100"]["p95_ms"] > 0
    assert set(report["routes"]) >= {"lists", "decisions, pending review"}
