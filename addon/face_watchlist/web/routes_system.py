"""Health, status, effective settings, the audit log, import jobs and the OpenAPI document."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import BodyPartReader, web

from face_watchlist import __version__
from face_watchlist.gallery.store import StoreError
from face_watchlist.trust.retention import purge
from face_watchlist.web import audit
from face_watchlist.web.context import IMPORTS_KEY, actor, service_of
from face_watchlist.web.errors import ApiError, not_found
from face_watchlist.web.schemas import IMPORT_UPLOAD, PURGE
from face_watchlist.web.spec import BODY, QUERY, Param, Response, Routes, ref

api = Routes()
MAX_CSV_BYTES = 20 << 20
MAX_ZIP_BYTES = 2 << 30
SECRET_KEYS = ("password", "token", "secret")
OBJECT = {"type": "object"}


@api.route(
    "GET",
    "/api/health",
    "Liveness: open, no credentials needed",
    "system",
    open=True,
    responses={200: Response("healthy", OBJECT), 503: Response("degraded (e.g. no MQTT broker)", OBJECT)},
)
async def health(request: web.Request) -> web.Response:
    status = service_of(request).status()
    ok = status.get("mqtt") == "connected"
    return web.json_response(
        {"status": "ok" if ok else "degraded", "service": "face_watchlist", "version": __version__},
        status=200 if ok else 503,
    )


@api.route(
    "GET",
    "/api/status",
    "MQTT, Frigate, queue, model pack and counters",
    "system",
    responses={200: Response("status", OBJECT)},
)
async def status(request: web.Request) -> web.Response:
    return web.json_response(service_of(request).status())


def redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if any(s in key.lower() for s in SECRET_KEYS) and value not in (None, ""):
        return "**redacted**"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [redact(v) for v in value]
    return value


@api.route(
    "POST",
    "/api/purge",
    "Apply the retention schedule now (or, with dry_run, count what would go)",
    "system",
    body=PURGE,
    responses={200: Response("what was removed, per kind of data", OBJECT)},
)
async def purge_now(request: web.Request) -> web.Response:
    service, dry_run = service_of(request), bool(request[BODY].get("dry_run", False))
    counts = purge(service.records, service.settings.retention, dry_run=dry_run, actor=actor(request))
    return web.json_response({"dry_run": dry_run, "removed": counts})


@api.route(
    "GET",
    "/api/settings",
    "Effective settings, secrets redacted",
    "system",
    responses={200: Response("settings", OBJECT)},
)
async def settings(request: web.Request) -> web.Response:
    s = service_of(request).settings
    raw = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    for key in ("pipeline", "gate"):
        raw[key] = dataclasses.asdict(raw[key])
    return web.json_response(redact(raw))


@api.route(
    "GET",
    "/api/audit",
    "Audit entries: who changed or reviewed what",
    "audit",
    params=(
        Param("since", {"type": "number"}, description="UNIX time"),
        Param("until", {"type": "number"}, description="UNIX time"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, default=100),
    ),
    responses={
        200: Response("entries, newest first", {"type": "object", "properties": {"items": {"type": "array"}}})
    },
)
async def get_audit(request: web.Request) -> web.Response:
    q = request[QUERY]
    items = audit.entries(request, q["since"], q["until"], q["limit"])
    return web.json_response({"items": items}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


# imports --------------------------------------------------------------------------------------


@api.route(
    "POST",
    "/api/imports",
    "Start a registry import (CSV, with a zip of photos)",
    "imports",
    multipart=IMPORT_UPLOAD,
    responses={202: Response("the job", ref("ImportJob")), 413: Response("too large")},
)
async def start_import(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data")
    fields = await _read_import_form(request)
    store = service_of(request).gallery.store
    name = fields.get("list", b"").decode(errors="replace").strip()
    if not name:
        raise ApiError(400, "bad_request", "list: required")
    try:
        watch_list = store.get_list(name)
    except StoreError:
        raise not_found(f"list named {name!r}") from None
    csv_data = fields.get("csv") or _csv_from_zip(fields.get("photos"))
    replace = fields.get("replace", b"").decode(errors="replace").lower() in ("1", "true", "on", "yes")
    job = request.app[IMPORTS_KEY].start(watch_list, csv_data, fields.get("photos"), actor(request), replace)
    return web.json_response(job.json(with_rows=False), status=202)


async def _read_import_form(request: web.Request) -> dict[str, bytes]:
    limits = {"csv": MAX_CSV_BYTES, "photos": MAX_ZIP_BYTES, "list": 400, "replace": 10}
    fields: dict[str, bytes] = {}
    try:
        reader = await request.multipart()
    except ValueError as err:  # e.g. no boundary in the Content-Type
        raise ApiError(400, "bad_request", f"not a readable multipart/form-data body ({err})") from None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name not in limits:
            continue
        chunks, size = [], 0
        while chunk := await part.read_chunk(1 << 20):
            size += len(chunk)
            if size > limits[part.name]:
                raise ApiError(413, "too_large", f"{part.name}: at most {limits[part.name]} bytes")
            chunks.append(chunk)
        fields[part.name] = b"".join(chunks)
    return fields


def _csv_from_zip(data: bytes | None) -> bytes:
    """A zip that carries its own registry CSV (the only .csv at its top level)."""
    if not data:
        raise ApiError(400, "bad_request", "send a registry CSV (field `csv`) or a zip holding one")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ApiError(400, "bad_request", "photos: not a readable zip") from None
    names = [
        i
        for i in archive.infolist()
        if len(PurePosixPath(i.filename).parts) == 1 and i.filename.lower().endswith(".csv")
    ]
    if len(names) != 1:
        raise ApiError(
            400, "bad_request", "the zip must hold exactly one .csv at its top level, or send `csv`"
        )
    if names[0].file_size > MAX_CSV_BYTES:
        raise ApiError(413, "too_large", "the registry CSV in the zip is too large")
    return archive.read(names[0])


@api.route(
    "GET",
    "/api/imports",
    "Import jobs, newest first",
    "imports",
    responses={200: Response("jobs", {"type": "array", "items": ref("ImportJob")})},
)
async def get_imports(request: web.Request) -> web.Response:
    jobs = list(request.app[IMPORTS_KEY].jobs.values())[::-1]
    return web.json_response([j.json(with_rows=False) for j in jobs])


@api.route(
    "GET",
    "/api/imports/{job_id}",
    "One import job with its progress and per-row report",
    "imports",
    params=(Param("job_id", {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "path"),),
    responses={200: Response("the job", ref("ImportJob"))},
)
async def get_import(request: web.Request) -> web.Response:
    job = request.app[IMPORTS_KEY].jobs.get(request[QUERY]["job_id"])
    if job is None:
        raise not_found("such import job")
    return web.json_response(job.json())
