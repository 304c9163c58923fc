"""Lists, people and their enrolment photos."""

from __future__ import annotations

import asyncio
from typing import Any

import cv2
import numpy as np
from aiohttp import BodyPartReader, web

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.images import decode_image
from face_watchlist.gallery.enroll import MAX_PHOTO_BYTES
from face_watchlist.gallery.store import Person, Store, StoreError, WatchList
from face_watchlist.trust import person as person_data
from face_watchlist.trust.schedule import ScheduleError
from face_watchlist.web import queries
from face_watchlist.web.context import WebService, actor, service_of
from face_watchlist.web.enrolment import Enrolled, WebEnroller
from face_watchlist.web.errors import ApiError, not_found
from face_watchlist.web.schemas import (
    FROM_EVENT,
    LIST_CHANGES,
    NEW_LIST,
    NEW_PERSON,
    PERSON_CHANGES,
    PHOTO_UPLOAD,
    page,
)
from face_watchlist.web.spec import BODY, QUERY, Param, Response, Routes, ref

api = Routes()
ID = {"type": "integer", "minimum": 1}
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, default=50)
OFFSET = Param("offset", {"type": "integer", "minimum": 0}, default=0)
THUMB_PX = 256


def _store(request: web.Request) -> Store:
    return service_of(request).gallery.store


def _pack(request: web.Request) -> str:
    return service_of(request).gallery.spec.name


def _list_by_id(store: Store, list_id: int) -> WatchList:
    name = queries.list_by_id(store, list_id)
    if name is None:
        raise not_found(f"list with id {list_id}")
    return store.get_list(name)


def _list_by_name(store: Store, name: str) -> WatchList:
    try:
        return store.get_list(name)
    except StoreError:
        raise not_found(f"list named {name!r}") from None


def _person(store: Store, person_id: int) -> Person:
    try:
        return store.get_person(person_id)
    except StoreError:
        raise not_found(f"person with id {person_id}") from None


def _list_json(store: Store, list_id: int) -> dict[str, Any]:
    return next(w for w in queries.lists(store) if w["id"] == list_id)


# lists ----------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/lists",
    "Lists with their people counts",
    "lists",
    responses={200: Response("lists", {"type": "array", "items": ref("List")})},
)
async def get_lists(request: web.Request) -> web.Response:
    return web.json_response(queries.lists(_store(request)))


@api.route(
    "POST",
    "/api/lists",
    "Create a list",
    "lists",
    body=NEW_LIST,
    responses={201: Response("the new list", ref("List"))},
)
async def create_list(request: web.Request) -> web.Response:
    body, store = request[BODY], _store(request)
    try:
        created = store.create_list(
            body["name"].strip(),
            body.get("kind", "watch"),
            body.get("threshold"),
            body.get("margin"),
            body.get("policy"),
            schedule=body.get("schedule"),
            actor=actor(request),
        )
    except ScheduleError as err:
        raise ApiError(400, "bad_request", str(err)) from None
    except StoreError as err:
        raise ApiError(409, "conflict", str(err)) from None
    return web.json_response(_list_json(store, created.id), status=201)


@api.route(
    "PATCH",
    "/api/lists/{list_id}",
    "Rename a list or change its kind, policy, threshold or margin",
    "lists",
    params=(Param("list_id", ID, "path"),),
    body=LIST_CHANGES,
    responses={200: Response("the list", ref("List"))},
)
async def update_list(request: web.Request) -> web.Response:
    store, changes = _store(request), dict(request[BODY])
    current = _list_by_id(store, request[QUERY]["list_id"])
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    try:
        store.update_list(current.name, actor=actor(request), **changes)
    except ScheduleError as err:
        raise ApiError(400, "bad_request", str(err)) from None
    except StoreError as err:
        raise ApiError(409, "conflict", str(err)) from None
    return web.json_response(_list_json(store, current.id))


@api.route(
    "DELETE",
    "/api/lists/{list_id}",
    "Delete a list; people left on no list are deleted",
    "lists",
    params=(Param("list_id", ID, "path"),),
    responses={204: Response("deleted", media="")},
)
async def delete_list(request: web.Request) -> web.Response:
    service, store = service_of(request), _store(request)
    current = _list_by_id(store, request[QUERY]["list_id"])
    removed = store.delete_list(current.name, actor=actor(request))
    service.gallery.removed(removed)
    service.gallery.save_index()
    return web.Response(status=204)


# people ---------------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/people",
    "People, paged, optionally on one list or matching a search",
    "people",
    params=(
        Param("list", {"type": "string"}, description="list name"),
        Param("q", {"type": "string", "maxLength": 200}, description="name or external id contains"),
        LIMIT,
        OFFSET,
    ),
    responses={200: Response("a page of people", page(ref("Person")))},
)
async def get_people(request: web.Request) -> web.Response:
    query, store = request[QUERY], _store(request)
    list_id = _list_by_name(store, query["list"]).id if query["list"] else None
    items, total = queries.people(store, _pack(request), list_id, query["q"], query["limit"], query["offset"])
    return web.json_response({"items": items, "total": total})


@api.route(
    "POST",
    "/api/people",
    "Create a person on a list (photos are added next)",
    "people",
    body=NEW_PERSON,
    responses={201: Response("the new person", ref("Person"))},
)
async def create_person(request: web.Request) -> web.Response:
    body, store = request[BODY], _store(request)
    watch_list = _list_by_name(store, body["list"])
    try:
        person = store.add_person(
            body["display_name"].strip(),
            body.get("external_id") or None,
            body.get("notes", ""),
            actor=actor(request),
        )
    except StoreError as err:
        raise ApiError(409, "conflict", str(err)) from None
    store.add_membership(person.id, watch_list.id, actor=actor(request))
    return web.json_response(queries.person(store, _pack(request), person.id), status=201)


@api.route(
    "GET",
    "/api/people/{person_id}",
    "A person with their enrolment photos and their quality",
    "people",
    params=(Param("person_id", ID, "path"),),
    responses={200: Response("the person", ref("PersonDetail"))},
)
async def get_person(request: web.Request) -> web.Response:
    store, person_id = _store(request), request[QUERY]["person_id"]
    found = queries.person(store, _pack(request), person_id)
    if found is None:
        raise not_found(f"person with id {person_id}")
    found["enrolment"] = queries.enrolment(store, _pack(request), person_id)
    return web.json_response(found)


@api.route(
    "PATCH",
    "/api/people/{person_id}",
    "Rename a person, change notes, or set their lists (move)",
    "people",
    params=(Param("person_id", ID, "path"),),
    body=PERSON_CHANGES,
    responses={200: Response("the person", ref("Person"))},
)
async def update_person(request: web.Request) -> web.Response:
    service, store, changes = service_of(request), _store(request), dict(request[BODY])
    person = _person(store, request[QUERY]["person_id"])
    wanted = changes.pop("lists", None)
    if "display_name" in changes:
        changes["display_name"] = changes["display_name"].strip()
    try:
        store.update_person(person.id, actor=actor(request), **changes)
    except StoreError as err:
        raise ApiError(409, "conflict", str(err)) from None
    if wanted is not None:
        _set_lists(service, store, person, [_list_by_name(store, name) for name in wanted], actor(request))
    return web.json_response(queries.person(store, _pack(request), person.id))


def _set_lists(service: WebService, store: Store, person: Person, wanted: list[WatchList], who: str) -> None:
    current = {w.id for w in store.person_lists(person.id)}
    for w in wanted:
        if w.id not in current:
            store.add_membership(person.id, w.id, actor=who)
    # remove only after adding: the person is never on no list (which would delete them)
    for list_id in current - {w.id for w in wanted}:
        service.gallery.removed(store.remove_membership(person.id, list_id, actor=who))


@api.route(
    "DELETE",
    "/api/people/{person_id}",
    "Delete a person with their photos and templates",
    "people",
    params=(Param("person_id", ID, "path"),),
    responses={204: Response("deleted", media="")},
)
async def delete_person(request: web.Request) -> web.Response:
    service, store = service_of(request), _store(request)
    person = _person(store, request[QUERY]["person_id"])
    person_data.delete_person(service.gallery, person.id, actor(request), reason="deleted")
    return web.Response(status=204)


# photos ---------------------------------------------------------------------------------------


def _enrolled_json(done: Enrolled) -> dict[str, Any]:
    q = done.quality
    return {
        "photo_id": done.photo_id,
        "person_id": done.person.id,
        "quality": {
            "face_px": round(q.face_px, 1),
            "sharpness": round(q.sharpness, 1),
            "frontalness": round(q.frontalness, 3),
            "det_score": round(q.det_score, 3),
        },
        "advice": done.advice,
    }


def _home_list(store: Store, person: Person) -> WatchList:
    lists = store.person_lists(person.id)
    if not lists:
        raise ApiError(409, "conflict", f"{person.display_name} is on no list")
    return lists[0]


@api.route(
    "POST",
    "/api/people/{person_id}/photos",
    "Enrol a photo (multipart field `photo`)",
    "photos",
    params=(Param("person_id", ID, "path"),),
    multipart=PHOTO_UPLOAD,
    responses={
        201: Response("enrolled, with the face's quality", ref("Enrolled")),
        413: Response("too large"),
        415: Response("not a JPEG, PNG or WebP"),
        422: Response("no_face, several_faces or poor_quality"),
    },
)
async def upload_photo(request: web.Request) -> web.Response:
    service, store = service_of(request), _store(request)
    person = _person(store, request[QUERY]["person_id"])
    data, filename, face = await _read_photo_form(request)
    done = await WebEnroller(service, "enrol", actor(request)).enrol_bytes(
        person, _home_list(store, person), data, f"upload:{filename}", face
    )
    return web.json_response(_enrolled_json(done), status=201)


async def _read_photo_form(request: web.Request) -> tuple[bytes, str, int | None]:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a `photo` field")
    try:
        reader = await request.multipart()
    except ValueError as err:  # e.g. no boundary in the Content-Type
        raise ApiError(400, "bad_request", f"not a readable multipart/form-data body ({err})") from None
    data, filename, face = b"", "photo", None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "photo":
            filename = (part.filename or "photo")[:100]
            data = await _read_capped(part)
        elif part.name == "face":
            text = (await part.read(decode=True))[:10].decode(errors="replace")
            if not text.strip().isdigit():
                raise ApiError(400, "bad_request", "face: expected a face number")
            face = int(text)
    if not data:
        raise ApiError(400, "bad_request", "the multipart field `photo` is missing or empty")
    return data, filename, face


async def _read_capped(part: BodyPartReader) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > MAX_PHOTO_BYTES:
            raise ApiError(413, "too_large", f"a photo may be at most {MAX_PHOTO_BYTES >> 20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


@api.route(
    "POST",
    "/api/people/{person_id}/photos/from_event",
    "Enrol the face in a Frigate event's snapshot",
    "photos",
    params=(Param("person_id", ID, "path"),),
    body=FROM_EVENT,
    responses={
        201: Response("enrolled", ref("Enrolled")),
        422: Response("no usable face"),
        502: Response("Frigate did not give the snapshot"),
    },
)
async def photo_from_event(request: web.Request) -> web.Response:
    service, store, body = service_of(request), _store(request), request[BODY]
    person = _person(store, request[QUERY]["person_id"])
    client = service.frigate_client
    if client is None:
        raise ApiError(503, "unavailable", "the service is not connected to Frigate")
    try:
        data = await client.snapshot(body["event_id"])
    except FaceWatchlistError as err:
        raise ApiError(502, "frigate_error", str(err)) from None
    enroller = WebEnroller(service, "enrol", actor(request))
    done = await enroller.enrol_bytes(
        person, _home_list(store, person), data, f"frigate:{body['event_id']}", body.get("face")
    )
    return web.json_response(_enrolled_json(done), status=201)


@api.route(
    "GET",
    "/api/photos/{photo_id}",
    "An enrolment photo as kept",
    "photos",
    params=(Param("photo_id", ID, "path"),),
    responses={200: Response("the photo", {"type": "string", "format": "binary"}, "image/*")},
)
async def get_photo(request: web.Request) -> web.StreamResponse:
    path, _ = _photo_file(request)
    media = {".png": "image/png", ".webp": "image/webp"}.get(path.suffix, "image/jpeg")
    return web.Response(
        body=path.read_bytes(), content_type=media, headers={"Cache-Control": "private, max-age=3600"}
    )


@api.route(
    "GET",
    "/api/photos/{photo_id}/face.jpg",
    "The enrolled face, cropped from its photo",
    "photos",
    params=(Param("photo_id", ID, "path"),),
    responses={200: Response("JPEG", {"type": "string", "format": "binary"}, "image/jpeg")},
)
async def get_photo_face(request: web.Request) -> web.Response:
    path, box = _photo_file(request)
    max_pixels = service_of(request).settings.max_pixels
    data = await asyncio.to_thread(_face_crop, path.read_bytes(), box, max_pixels)
    return web.Response(
        body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


def _photo_file(request: web.Request) -> tuple[Any, tuple[float, ...]]:
    store, photo_id = _store(request), request[QUERY]["photo_id"]
    row = queries.photo(store, photo_id)
    if row is None:
        raise not_found(f"photo with id {photo_id}")
    path = store.photos_dir / row["path"]
    if not path.is_file():
        raise not_found(f"file for photo {photo_id}")
    return path, tuple(float(v) for v in row["face_box"].split(","))


def _face_crop(data: bytes, box: tuple[float, ...], max_pixels: int) -> bytes:
    """The face with half its size around it, at most THUMB_PX on a side (the review page's size)."""
    image = decode_image(data, max_pixels)
    x1, y1, x2, y2 = box
    pad = 0.5 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    crop = image[max(0, int(y1 - pad)) : min(h, int(y2 + pad)), max(0, int(x1 - pad)) : min(w, int(x2 + pad))]
    if crop.size == 0:
        crop = image
    scale = THUMB_PX / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return bytes(
        cv2.imencode(".jpg", np.ascontiguousarray(crop), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    )
