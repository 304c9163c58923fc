"""Enrolment: photos in, templates out, with a reason for every photo that is refused.

Sources: image files, a folder of `<person>/*.jpg`, or a registry export (a CSV with `id`,
`name` and `photo` columns, photos in a folder or a zip). Every photo is one transaction, so an
interrupted import is consistent and its re-run completes it; the same photo twice is one
template. `replace=True` (a scheduled daily refresh) takes people who left the registry off the
list.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from face_watchlist.errors import FaceWatchlistError, ImageError
from face_watchlist.faces.images import decode_image, sniff_size
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.quality import QualityGate
from face_watchlist.faces.types import Face, iou
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Person, StoreError, WatchList

MAX_PHOTO_BYTES = 20 << 20
MAX_ZIP_RATIO = 100  # a JPEG barely compresses: a member expanding 100x is a zip bomb
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@dataclass(frozen=True)
class Outcome:
    source: str
    person: str
    status: str  # "enrolled", "already enrolled" or "skipped"
    reason: str = ""


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    removed_people: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def counts(self) -> dict[str, int]:
        counter = Counter(o.status for o in self.outcomes)
        return {
            "enrolled": counter["enrolled"],
            "already_enrolled": counter["already enrolled"],
            "skipped": counter["skipped"],
            "removed_people": len(self.removed_people),
        }

    def skip_reasons(self) -> dict[str, int]:
        return dict(Counter(_reason_kind(o.reason) for o in self.outcomes if o.status == "skipped"))


def _reason_kind(reason: str) -> str:
    return reason.split(" (", maxsplit=1)[0].split(":", maxsplit=1)[0]


@dataclass(frozen=True)
class PhotoJob:
    """One photo to enrol for one person; `load` gives its bytes or raises FaceWatchlistError."""

    source: str
    display_name: str
    external_id: str | None
    load: Callable[[], bytes]
    face: int | None = None


Prepare = Callable[[np.ndarray], np.ndarray]
Pick = Callable[[list[Face], tuple[int, ...]], Face]


class Enroller:
    """Enrols photo jobs. `prepare` transforms each decoded photo before detection (benchmarks
    pad LFW crops); `pick` chooses among several faces (benchmarks take LFW's central face)
    instead of refusing the photo, which is what an administrator gets."""

    def __init__(
        self,
        gallery: Gallery,
        pipeline: FacePipeline,
        gate: QualityGate,
        method: str,
        prepare: Prepare | None = None,
        pick: Pick | None = None,
        actor: str | None = None,
    ) -> None:
        self.gallery, self.pipeline, self.gate, self.method = gallery, pipeline, gate, method
        self.store = gallery.store
        self.prepare, self.pick = prepare, pick
        self.actor = actor  # None: the store's own (who opened it)

    def person_for(self, job: PhotoJob) -> Person:
        found = self.store.find_person(external_id=job.external_id) if job.external_id else None
        if found is None and job.external_id is None:
            found = self.store.find_person(display_name=job.display_name)
        if found is None:
            return self.store.add_person(job.display_name, job.external_id, actor=self.actor)
        if found.display_name != job.display_name:  # the registry renamed them
            return self.store.update_person(found.id, display_name=job.display_name, actor=self.actor)
        return found

    def enrol(self, job: PhotoJob, watch_list: WatchList) -> Outcome:
        def skipped(reason: str) -> Outcome:
            return Outcome(job.source, job.display_name, "skipped", reason)

        try:
            data = job.load()
        except FaceWatchlistError as err:
            return skipped(f"unreadable: {err}")
        sha256 = hashlib.sha256(data).hexdigest()
        known = self.store.photo_by_hash(sha256)
        if known is not None:
            owner = self.store.get_person(known[1])
            same_id = job.external_id is not None and job.external_id == owner.external_id
            if same_id or (job.external_id is None and owner.display_name == job.display_name):
                self.person_for(job)  # picks up a rename from the registry
                self.store.add_membership(owner.id, watch_list.id, actor=self.actor)
                return Outcome(job.source, job.display_name, "already enrolled")
            return skipped(f"duplicate (the same photo is enrolled for {owner.display_name})")
        try:
            kind = sniff_size(data)[0]
            image = decode_image(data)
        except ImageError as err:
            return skipped(f"not an image: {err}")
        if self.prepare:
            image = self.prepare(image)
        faces = self.pipeline.analyse(image, pad_retry=True)
        if self.pick and faces and job.face is None:
            faces = [self.pick(faces, image.shape)]
        face, problem = self._choose_face(faces, job.face)
        if face is None:
            return skipped(problem)
        assert face.embedding is not None
        person = self.person_for(job)
        try:
            self.keep(
                person, watch_list, data, sha256, f".{'jpg' if kind == 'jpeg' else kind}", face, job.source
            )
        except StoreError as err:
            return skipped(str(err))
        return Outcome(job.source, job.display_name, "enrolled")

    def keep(
        self,
        person: Person,
        watch_list: WatchList,
        data: bytes,
        sha256: str,
        suffix: str,
        face: Face,
        source: str,
    ) -> int:
        """Store the photo, its template and the membership (audited), and index the template."""
        assert face.embedding is not None
        q = face.quality
        template_id = self.store.enrol(
            person.id,
            watch_list.id,
            data,
            sha256,
            suffix,
            face.detection.box,
            source,
            self.pipeline.spec.name,
            face.embedding,
            (q.face_px, q.sharpness, q.frontalness, q.det_score),
            self.method,
            actor=self.actor,
        )
        self.gallery.added(template_id, face.embedding)
        return template_id

    def _choose_face(self, faces: list[Face], chosen: int | None) -> tuple[Face | None, str]:
        if not faces:
            return None, "no face"
        if chosen is not None:
            if not 0 <= chosen < len(faces):
                return None, f"no face number {chosen} (found {len(faces)}, numbered from 0, largest first)"
            face = faces[chosen]
        else:
            # tiny faces in the background (a poster, a passer-by) do not make a photo ambiguous
            real = [f for f in faces if f.quality.face_px >= self.gate.min_face_px]
            if len(real) > 1:
                return None, f"several faces ({len(real)}): choose one with --face N (0 = largest)"
            face = real[0] if real else faces[0]
        reasons = self.gate.reasons(face.quality)
        return (None, reasons[0]) if reasons else (face, "")

    def run(
        self,
        jobs: list[PhotoJob],
        watch_list: WatchList,
        summary: Summary | None = None,
        progress: Callable[[Iterator[PhotoJob]], Iterator[PhotoJob]] | None = None,
    ) -> Summary:
        summary = summary or Summary()
        try:
            for job in progress(iter(jobs)) if progress else jobs:
                summary.add(self.enrol(job, watch_list))
        finally:
            self.gallery.save_index()
        return summary


# sources -----------------------------------------------------------------------------------


def file_jobs(
    paths: list[Path], display_name: str, external_id: str | None, face: int | None
) -> list[PhotoJob]:
    return [PhotoJob(str(p), display_name, external_id, file_loader(p), face) for p in paths]


def folder_jobs(folder: Path) -> list[PhotoJob]:
    """`<person>/*.jpg`: the folder name is the person's display name."""
    jobs = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for photo in sorted(person_dir.iterdir()):
            if photo.is_file() and photo.suffix.lower() in IMAGE_SUFFIXES:
                jobs.append(
                    PhotoJob(f"{person_dir.name}/{photo.name}", person_dir.name, None, file_loader(photo))
                )
    return jobs


def file_loader(path: Path) -> Callable[[], bytes]:
    def load() -> bytes:
        try:
            if path.stat().st_size > MAX_PHOTO_BYTES:
                raise ImageError(f"{path}: larger than {MAX_PHOTO_BYTES >> 20} MB")
            return path.read_bytes()
        except OSError as err:
            raise ImageError(f"{path}: {err.strerror}") from None

    return load


@dataclass(frozen=True)
class RegistryRow:
    line: int
    external_id: str
    name: str
    photo: str


def parse_registry(text: str) -> tuple[list[RegistryRow], list[str]]:
    """Rows of a registry CSV (`id`, `name`, `photo`; other columns ignored) and one error per
    malformed line, with its line number. Malformed rows are skipped whole."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _parse_rows(reader)
    except csv.Error as err:  # e.g. a field over csv's limit: the reader cannot go past it
        raise FaceWatchlistError(f"registry CSV, after line {reader.line_num}: {err}") from None


def _parse_rows(reader: csv.DictReader[str]) -> tuple[list[RegistryRow], list[str]]:
    missing = {"id", "name", "photo"} - {(f or "").strip().lower() for f in reader.fieldnames or []}
    if missing:
        raise FaceWatchlistError(f"registry CSV lacks the column(s): {', '.join(sorted(missing))}")
    rows: list[RegistryRow] = []
    errors: list[str] = []
    seen: set[str] = set()
    for record in reader:
        line = reader.line_num
        fields = {
            (k or "").strip().lower(): (v or "").strip() for k, v in record.items() if isinstance(v, str)
        }
        if None in record:
            errors.append(f"line {line}: more fields than columns")
            continue
        problem = _row_problem(fields, seen)
        if problem:
            errors.append(f"line {line}: {problem}")
            continue
        seen.add(fields["id"])
        rows.append(RegistryRow(line, fields["id"], fields["name"], fields["photo"]))
    return rows, errors


def _row_problem(fields: dict[str, str], seen: set[str]) -> str:
    for key in ("id", "name", "photo"):
        if not fields.get(key):
            return f"empty {key}"
    if fields["id"] in seen:
        return f"id {fields['id']!r} appears twice"
    photo = PurePosixPath(fields["photo"].replace("\\", "/"))
    if photo.is_absolute() or ".." in photo.parts or ":" in fields["photo"]:
        return f"photo path {fields['photo']!r} must be relative, inside the photo folder or zip"
    return ""


class PhotoSource:
    """Photos named by relative path, from a folder or a zip, never from outside it."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.zip: zipfile.ZipFile | None = None
        if location.is_file():
            try:
                self.zip = zipfile.ZipFile(location)
            except (zipfile.BadZipFile, OSError) as err:
                raise FaceWatchlistError(f"{location}: not a readable zip ({err})") from None
        elif not location.is_dir():
            raise FaceWatchlistError(f"{location}: no such photo folder or zip")

    def loader(self, relative: str) -> Callable[[], bytes]:
        name = PurePosixPath(relative.replace("\\", "/")).as_posix()
        return lambda: self._read(name)

    def _read(self, name: str) -> bytes:
        if self.zip is not None:
            return self._read_zip(self.zip, name)
        root = self.location.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):  # a symlink pointing out of the folder
            raise ImageError(f"{name}: outside the photo folder")
        return file_loader(path)()

    def _read_zip(self, archive: zipfile.ZipFile, name: str) -> bytes:
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise ImageError(f"{name}: not in {self.location.name}") from None
        if info.file_size > MAX_PHOTO_BYTES or info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise ImageError(f"{name}: refused (expands to {info.file_size} bytes)")
        try:
            with archive.open(info) as handle:
                return handle.read(MAX_PHOTO_BYTES + 1)[:MAX_PHOTO_BYTES]
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ImageError(f"{name}: corrupt zip member ({err})") from None


def registry_jobs(csv_path: Path, photos: Path) -> tuple[list[PhotoJob], list[str]]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FaceWatchlistError(f"{csv_path}: cannot read the registry CSV ({err})") from None
    rows, errors = parse_registry(text)
    source = PhotoSource(photos)
    jobs = [
        PhotoJob(f"{csv_path.name}:{row.line}", row.name, row.external_id, source.loader(row.photo))
        for row in rows
    ]
    return jobs, errors


def remove_absent(
    gallery: Gallery,
    watch_list: WatchList,
    jobs: list[PhotoJob],
    summary: Summary,
    *,
    bad_rows: list[str],
    actor: str | None = None,
) -> bool:
    """`--replace`: take people who are no longer in the source (registry ids, or folder names
    for a folder import) off the list; people left on no list are deleted.

    Does nothing when the source had malformed rows (their people may be the ones that look
    absent): returns whether it applied."""
    if bad_rows:
        return False
    ids = {j.external_id for j in jobs if j.external_id is not None}
    names = {j.display_name for j in jobs if j.external_id is None}
    for person in gallery.store.people(watch_list.name):
        present = (
            person.external_id in ids if person.external_id is not None else person.display_name in names
        )
        if not present:
            gallery.removed(gallery.store.remove_membership(person.id, watch_list.id, actor=actor))
            summary.removed_people.append(f"{person.display_name} ({person.external_id})")
    gallery.save_index()
    return True


def record_import(
    gallery: Gallery,
    source: str,
    watch_list: WatchList,
    summary: Summary,
    bad_rows: list[str],
    replace: bool,
    actor: str | None = None,
) -> int:
    """One audit entry per import, with its counts (each enrolment has its own entry too)."""
    details: dict[str, object] = {
        "source": source,
        "list": watch_list.name,
        **summary.counts(),
        "skipped_by_reason": summary.skip_reasons(),
        "bad_rows": len(bad_rows),
        "replace": replace,
    }
    with gallery.store.transaction():
        return gallery.store.record("import", f"list:{watch_list.id}", details, actor)


def refind_face(pipeline: FacePipeline, photo: Callable[[], bytes], face_box: str) -> tuple[Face | None, str]:
    """The enrolled face of a kept photo (`photo` reads its bytes), found again (for another
    pack): the detection that overlaps the recorded box most."""
    try:
        image = decode_image(photo())
    except (OSError, FaceWatchlistError) as err:
        return None, f"cannot read the kept photo ({err})"
    box = tuple(float(v) for v in face_box.split(","))
    faces = pipeline.analyse(image, pad_retry=True)
    if not faces:
        return None, "no face found with this pack"
    best = max(faces, key=lambda f: iou(f.detection.box, box))
    return (
        (best, "") if iou(best.detection.box, box) > 0.3 else (None, "the enrolled face was not found again")
    )
