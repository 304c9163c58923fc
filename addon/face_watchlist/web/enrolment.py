"""Enrolment from the web: one uploaded photo (or a Frigate snapshot, or an import row) for one
person, with the same checks and reasons as the command line.

The models run in a worker thread under the service's models lock (the detector is not
thread-safe and the pipeline also serves live events); the store is written on the event loop's
thread, which owns its SQLite connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from face_watchlist.errors import ImageError
from face_watchlist.faces.images import decode_image, sniff_size
from face_watchlist.faces.types import Face, Quality
from face_watchlist.gallery.enroll import MAX_PHOTO_BYTES, Enroller, PhotoJob
from face_watchlist.gallery.store import Person, StoreError, WatchList
from face_watchlist.web.context import WebService
from face_watchlist.web.errors import ApiError

ACCEPTED = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}


@dataclass(frozen=True)
class Enrolled:
    photo_id: int
    person: Person
    quality: Quality
    advice: list[str]


def check_upload(data: bytes, max_pixels: int) -> str:
    """Size, type and pixel limits from the header alone; returns the file suffix."""
    if not data:
        raise ApiError(400, "bad_request", "the photo is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise ApiError(413, "too_large", f"a photo may be at most {MAX_PHOTO_BYTES >> 20} MB")
    try:
        kind, width, height = sniff_size(data)
    except ImageError as err:
        raise ApiError(415, "unsupported_media_type", f"{err}; send a JPEG, PNG or WebP") from None
    if kind not in ACCEPTED:
        raise ApiError(
            415, "unsupported_media_type", f"{kind.upper()} is not accepted; send a JPEG, PNG or WebP"
        )
    if width * height > max_pixels:
        raise ApiError(
            413, "too_large", f"the photo is {width}x{height}, over the limit of {max_pixels} pixels"
        )
    return ACCEPTED[kind]


def advice(quality: Quality, min_face_px: float) -> list[str]:
    """Hints for a photo that passed the gate but will match less well than it could."""
    tips = []
    if quality.face_px < 2 * min_face_px:
        tips.append("the face is small: a closer photo matches better")
    if quality.frontalness < 0.6:
        tips.append("the face is turned: a photo looking at the camera matches better")
    if quality.sharpness < 60:
        tips.append("the photo is soft: a sharper one matches better")
    return tips


class WebEnroller(Enroller):
    """The command line's Enroller, with the models awaited instead of called."""

    def __init__(self, service: WebService, method: str, actor: str) -> None:
        settings = service.settings
        super().__init__(service.gallery, service.pipeline, settings.gate, method, actor=actor)
        self.service = service

    async def faces(self, data: bytes) -> list[Face]:
        max_pixels = self.service.settings.max_pixels

        def analyse() -> list[Face]:
            return self.pipeline.analyse(decode_image(data, max_pixels), pad_retry=True)

        async with self.service.models_lock:
            try:
                return await asyncio.to_thread(analyse)
            except ImageError as err:
                raise ApiError(422, "bad_image", str(err)) from None

    async def enrol_bytes(
        self, person: Person, watch_list: WatchList, data: bytes, source: str, face: int | None = None
    ) -> Enrolled:
        """Enrol one photo for an existing person; ApiError (409/413/415/422) with the reason."""
        suffix = check_upload(data, self.service.settings.max_pixels)
        sha256 = hashlib.sha256(data).hexdigest()
        known = self.store.photo_by_hash(sha256)
        if known is not None:
            owner = self.store.get_person(known[1])
            raise ApiError(409, "duplicate", f"this photo is already enrolled for {owner.display_name}")
        faces = await self.faces(data)
        chosen, problem = self._choose_face(faces, face)
        if chosen is None:
            code = (
                "no_face"
                if problem == "no face"
                else "several_faces"
                if "several" in problem
                else "poor_quality"
            )
            raise ApiError(422, code, problem.replace(" with --face N", " (send face=N)"))
        q = chosen.quality
        try:
            template_id = self.keep(person, watch_list, data, sha256, suffix, chosen, source)
        except StoreError as err:
            raise ApiError(409, "conflict", str(err)) from None
        self.gallery.save_index()
        row = self.store.db.execute("SELECT photo_id FROM templates WHERE id = ?", (template_id,)).fetchone()
        return Enrolled(int(row[0]), person, q, advice(q, self.gate.min_face_px))

    async def enrol_job(self, job: PhotoJob, watch_list: WatchList) -> tuple[str, str]:
        """One import row: (status, reason), never raising for a bad row."""
        try:
            data = job.load()
        except Exception as err:  # the loader's own errors name the row's file
            return "skipped", f"unreadable: {err}"
        sha256 = hashlib.sha256(data).hexdigest()
        known = self.store.photo_by_hash(sha256)
        if known is not None:  # same rule as the command line: a re-run completes, never doubles
            outcome = self.enrol(job, watch_list)
            return outcome.status, outcome.reason
        if job.external_id:
            existing = self.store.find_person(external_id=job.external_id)
        else:
            existing = self.store.find_person(display_name=job.display_name)
        person = existing or self.store.add_person(job.display_name, job.external_id)
        try:
            await self.enrol_bytes(person, watch_list, data, job.source, job.face)
        except ApiError as err:
            if existing is None:
                self.store.delete_person(person.id)  # created for this row only: leave no empty person
            return "skipped", err.message
        if existing is not None and existing.display_name != job.display_name:
            self.store.update_person(existing.id, display_name=job.display_name)  # the registry renamed them
        return "enrolled", ""
