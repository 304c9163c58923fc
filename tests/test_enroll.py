"""Enrolment on real photos with the real pipeline and real SQLite stores: folders, registry CSVs
with photo folders or zips (and their hostile variants), --replace, renames, matching afterwards,
reviewer rejections, and an import killed with SIGKILL half-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from face_watchlist.cli import main
from face_watchlist.errors import FaceWatchlistError, ImageError
from face_watchlist.faces.images import load_image
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.quality import QualityGate
from face_watchlist.gallery.enroll import (
    MAX_PHOTO_BYTES,
    MAX_ZIP_RATIO,
    Enroller,
    Outcome,
    PhotoJob,
    PhotoSource,
    Summary,
    file_jobs,
    file_loader,
    folder_jobs,
    parse_registry,
    registry_jobs,
    remove_absent,
)
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store, WatchList

DATA = Path(__file__).resolve().parent / "data"
KNN = DATA / "faces/face_recognition_knn"
JOHNS = DATA / "faces/dlib_johns/images"
SCENES = DATA / "scenes/dlib_voc"
KNN_PEOPLE = {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
PACK = PACKS["opencv-zoo"]


def johns(n: int) -> list[Path]:
    """n tight face crops, one per John first, then the next photo of each."""
    people = sorted(p for p in JOHNS.iterdir() if p.is_dir())
    photos = [sorted(p.glob("*.jpg")) for p in people]
    return [photos[i % len(people)][i // len(people)] for i in range(n)]


def statuses(summary: Summary) -> list[tuple[str, str]]:
    return [(o.status, o.reason) for o in summary.outcomes]


def reasons(summary: Summary) -> dict[str, str]:
    return {o.source: o.reason for o in summary.outcomes if o.status == "skipped"}


@dataclass
class Enrolled:
    data: Path
    store: Store
    gallery: Gallery
    enroller: Enroller
    watch_list: WatchList
    summary: Summary

    def run(self, jobs: list[PhotoJob], watch_list: WatchList | None = None) -> Summary:
        return self.enroller.run(jobs, watch_list or self.watch_list)


def open_enrolled(data: Path, pipeline: FacePipeline, list_name: str = "staff") -> Enrolled:
    store = Store(data)
    gallery = Gallery(store, PACK)
    enroller = Enroller(gallery, pipeline, QualityGate(), "import")
    return Enrolled(data, store, gallery, enroller, store.ensure_list(list_name), Summary())


@pytest.fixture(scope="module")
def knn(tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline) -> Iterator[Enrolled]:
    """The knn enrolment photos imported as a folder onto `staff` (shared: tests only read it)."""
    enrolled = open_enrolled(tmp_path_factory.mktemp("knn"), pipeline)
    enrolled.summary = enrolled.run(folder_jobs(KNN / "enroll"))
    yield enrolled
    enrolled.store.close()


@pytest.fixture
def fresh(tmp_path: Path, pipeline: FacePipeline) -> Iterator[Callable[[str], Enrolled]]:
    """Empty galleries in tmp_path, closed afterwards."""
    opened: list[Enrolled] = []

    def make(name: str = "data") -> Enrolled:
        opened.append(open_enrolled(tmp_path / name, pipeline))
        return opened[-1]

    yield make
    for enrolled in opened:
        enrolled.store.close()


@pytest.fixture(scope="module")
def probes(pipeline: FacePipeline) -> dict[str, np.ndarray]:
    found = {}
    for name in ("obama1", "johnsnow_test1", "alex_lacamoire1"):
        (face,) = pipeline.analyse(load_image(KNN / f"probe/{name}.jpg"), pad_retry=True)
        found[name] = face.embedding
    return found


# folders ------------------------------------------------------------------------------------


def test_folder_import(knn: Enrolled) -> None:
    assert knn.summary.counts() == {"enrolled": 9, "already_enrolled": 0, "skipped": 0, "removed_people": 0}
    assert {p.display_name for p in knn.store.people("staff")} == KNN_PEOPLE
    assert all(p.external_id is None for p in knn.store.people())
    counts = knn.store.counts()
    assert (counts["people"], counts["photos"], counts["templates"]) == (5, 9, 9)
    assert len(knn.gallery.index) == 9
    obama = knn.store.find_person(display_name="obama")
    assert obama is not None
    assert len(knn.store.templates(PACK.name, obama.id)) == 2
    for row in knn.store.photos():
        assert (knn.store.photos_dir / row["path"]).is_file()


def test_folder_reimport_is_idempotent(knn: Enrolled) -> None:
    generation = knn.store.generation(PACK.name)
    summary = knn.run(folder_jobs(KNN / "enroll"))
    assert summary.counts()["already_enrolled"] == 9
    assert summary.counts()["enrolled"] == summary.counts()["skipped"] == 0
    assert knn.store.counts()["templates"] == 9
    assert knn.store.generation(PACK.name) == generation
    assert len(knn.gallery.index) == 9


def test_the_same_photo_under_another_name_is_a_duplicate(knn: Enrolled) -> None:
    photo = KNN / "enroll/obama/obama.jpg"
    summary = knn.run([PhotoJob("copy.jpg", "Barry", None, file_loader(photo))])
    (outcome,) = summary.outcomes
    assert outcome.status == "skipped"
    assert outcome.reason == "duplicate (the same photo is enrolled for obama)"
    assert summary.skip_reasons() == {"duplicate": 1}
    assert knn.store.find_person(display_name="Barry") is None
    assert knn.store.counts()["templates"] == 9


def test_a_group_photo_needs_a_chosen_face(fresh: Callable[[str], Enrolled]) -> None:
    g = fresh("data")
    scene = SCENES / "2008_001009.jpg"  # two faces, both good enough
    summary = g.run(
        [
            *file_jobs([KNN / "probe/obama_and_biden.jpg"], "Joe", None, None),
            *file_jobs([scene], "Ann", None, None),
            *file_jobs([scene], "Ann", None, 5),
        ]
    )
    first, second, third = summary.outcomes
    assert first.status == second.status == third.status == "skipped"
    assert first.reason.startswith("several faces (")
    assert second.reason == "several faces (2): choose one with --face N (0 = largest)"
    assert third.reason == "no face number 5 (found 2, numbered from 0, largest first)"
    assert summary.skip_reasons() == {"several faces": 2, "no face number 5": 1}
    assert g.store.counts()["people"] == 0  # nobody was created for a refused photo

    summary = g.run(file_jobs([scene], "Ann", None, 0))
    assert statuses(summary) == [("enrolled", "")]
    (row,) = g.store.photos()
    _, y1, _, y2 = (float(v) for v in row["face_box"].split(","))
    assert y2 - y1 > 90  # the larger face (106 px), as numbered largest first


def test_not_an_image(knn: Enrolled, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo at all\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((KNN / "enroll/biden/biden.jpg").read_bytes()[:20_000])
    summary = knn.run(file_jobs([text, empty, truncated], "Nobody", None, None))
    assert [o.status for o in summary.outcomes] == ["skipped"] * 3
    for outcome in summary.outcomes:
        assert outcome.reason.startswith("not an image: "), outcome
    assert "JPEG" in summary.outcomes[2].reason
    assert summary.skip_reasons() == {"not an image": 3}
    assert knn.store.find_person(display_name="Nobody") is None


def test_a_tiny_face_is_refused(knn: Enrolled, tmp_path: Path) -> None:
    crop = cv2.imread(str(johns(1)[0]))
    frame = np.full((480, 640, 3), 128, np.uint8)
    small = cv2.resize(crop, (28, 28), interpolation=cv2.INTER_AREA)  # the face itself ~20 px
    frame[220:248, 300:328] = small
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), frame)
    (outcome,) = knn.run(file_jobs([path], "Tiny", None, None)).outcomes
    assert outcome.status == "skipped"
    assert outcome.reason == "no face" or outcome.reason.startswith("too small ("), outcome
    assert knn.store.find_person(display_name="Tiny") is None


# matching and rejections --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "person"),
    [("obama1", "obama"), ("johnsnow_test1", "kit_harington"), ("alex_lacamoire1", "alex_lacamoire")],
)
def test_match_after_enrolment(knn: Enrolled, probes: dict[str, np.ndarray], probe: str, person: str) -> None:
    decision = knn.gallery.match(probes[probe])
    assert (decision.outcome, decision.reason) == ("match", "matched")
    assert knn.store.get_person(decision.person_id).display_name == person
    assert decision.list == knn.store.get_list("staff")
    assert decision.score >= PACK.thresholds.threshold
    assert decision.margin >= PACK.thresholds.margin
    assert decision.false_match_rate < 1e-3


def test_two_people_in_one_probe_photo(knn: Enrolled, pipeline: FacePipeline) -> None:
    faces = pipeline.analyse(load_image(KNN / "probe/kit_with_rose.jpg"), pad_retry=True)
    names = set()
    for face in faces:
        decision = knn.gallery.match(face.embedding)
        assert decision.outcome == "match"
        names.add(knn.store.get_person(decision.person_id).display_name)
    assert names == {"kit_harington", "rose_leslie"}


def test_strangers_are_nobody(knn: Enrolled, pipeline: FacePipeline) -> None:
    for photo in johns(5):
        (face,) = pipeline.analyse(load_image(photo), pad_retry=True)
        decision = knn.gallery.match(face.embedding)
        assert decision.outcome == "nobody", photo
        assert decision.reason == "below_threshold"
        assert decision.person_id is not None  # the closest enrolled person
        assert decision.false_match_rate > 1e-4


def test_a_rejection_suppresses_the_same_probe(
    knn: Enrolled, probes: dict[str, np.ndarray], tmp_path: Path
) -> None:
    with closing(sqlite3.connect(tmp_path / "gallery.sqlite3")) as target:
        knn.store.db.backup(target)  # a copy: the shared gallery stays without rejections
    store = Store(tmp_path)
    try:
        gallery = Gallery(store, PACK)
        assert len(gallery.index) == 9
        obama = store.find_person(display_name="obama")
        assert obama is not None
        probe = probes["obama1"]
        assert gallery.match(probe).person_id == obama.id
        store.add_rejection(obama.id, PACK.name, probe, "reviewer", "not him")

        decision = gallery.match(probe)
        assert decision.outcome == "nobody"
        assert decision.suppressed == (obama.id,)
        assert decision.person_id != obama.id
        # the closest person was the rejected one: the others are far below the threshold
        assert decision.reason == "rejected"
        # other probes are unaffected
        assert gallery.match(probes["johnsnow_test1"]).outcome == "match"

        for person in store.people():
            if person.id != obama.id:
                gallery.removed(store.delete_person(person.id))
        decision = gallery.match(probe)
        assert (decision.outcome, decision.reason, decision.person_id) == ("nobody", "rejected", None)
    finally:
        store.close()


# registry CSVs ------------------------------------------------------------------------------


def photo_folder(root: Path, names: dict[str, Path]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, source in names.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return root


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


REGISTRY = (
    "id,name,photo,grade\n"  # 1
    "101,John Salley,salley.jpg,5\n"  # 2
    "102,John Savage,savage.jpg,6\n"  # 3
    "103,Missing Photo\n"  # 4: a field short
    "104,Too Many,simm.jpg,7,extra\n"  # 5: a field too many
    "101,Dup Id,shimkus.jpg,8\n"  # 6: the id again
    "105,Absolute,/etc/hostname,1\n"  # 7
    "106,Traversal,../outside.jpg,1\n"  # 8
    "107,Windows,C:\\photos\\salley.jpg,1\n"  # 9
    "108,No File,nothere.jpg,1\n"  # 10: well-formed, but the photo is missing
    "109,John Schneider,sub\\schneider.jpg,2\n"  # 11: Windows separators, relative: fine
    '110,"Simm, John",simm.jpg,3\n'  # 12
)


def test_registry_csv_with_bad_rows(fresh: Callable[[str], Enrolled], tmp_path: Path) -> None:
    salley, savage, schneider, shimkus, simm = johns(5)
    photos = photo_folder(
        tmp_path / "photos",
        {"salley.jpg": salley, "savage.jpg": savage, "sub/schneider.jpg": schneider, "simm.jpg": simm},
    )
    shutil.copy(shimkus, photos / "shimkus.jpg")
    shutil.copy(shimkus, tmp_path / "outside.jpg")  # what a traversal would reach
    csv_path = write_csv(tmp_path / "registry.csv", REGISTRY)

    jobs, errors = registry_jobs(csv_path, photos)
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in (4, 5, 6, 7, 8, 9)]
    assert errors[0] == "line 4: empty photo"
    assert errors[1] == "line 5: more fields than columns"
    assert errors[2] == "line 6: id '101' appears twice"
    for error in errors[3:]:
        assert "must be relative, inside the photo folder or zip" in error
    assert [(j.source, j.external_id) for j in jobs] == [
        ("registry.csv:2", "101"),
        ("registry.csv:3", "102"),
        ("registry.csv:10", "108"),
        ("registry.csv:11", "109"),
        ("registry.csv:12", "110"),
    ]

    g = fresh("data")
    summary = g.run(jobs)
    assert summary.counts()["enrolled"] == 4
    assert list(reasons(summary)) == ["registry.csv:10"]
    assert reasons(summary)["registry.csv:10"].startswith("unreadable: ")
    assert summary.skip_reasons() == {"unreadable": 1}
    people = {p.external_id: p.display_name for p in g.store.people("staff")}
    assert people == {
        "101": "John Salley",
        "102": "John Savage",
        "109": "John Schneider",
        "110": "Simm, John",
    }
    # nothing of a malformed row was applied: not its person, not its photo
    sources = {row["source"] for row in g.store.photos()}
    assert sources == {"registry.csv:2", "registry.csv:3", "registry.csv:11", "registry.csv:12"}
    assert g.store.counts()["templates"] == len(g.gallery.index) == 4


def test_registry_csv_lacking_a_column(tmp_path: Path) -> None:
    with pytest.raises(FaceWatchlistError, match=r"lacks the column\(s\): photo"):
        parse_registry("id,name,picture\n1,Ann,a.jpg\n")
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes("id,name,photo\n1,Jos\xe9,a.jpg\n".encode("latin-1"))
    with pytest.raises(FaceWatchlistError, match="cannot read the registry CSV"):
        registry_jobs(not_utf8, tmp_path)
    with pytest.raises(FaceWatchlistError, match="no such photo folder or zip"):
        registry_jobs(write_csv(tmp_path / "r.csv", "id,name,photo\n"), tmp_path / "missing")
    # a byte-order mark (Excel), spaces and capitals in the header, a blank line
    bom = tmp_path / "excel.csv"
    bom.write_text("ID , Name,PHOTO\n\n1, Ann ,a.jpg\n", encoding="utf-8-sig")
    jobs, errors = registry_jobs(bom, tmp_path)
    assert errors == []
    assert [(j.source, j.external_id, j.display_name) for j in jobs] == [("excel.csv:3", "1", "Ann")]


def test_a_symlink_out_of_the_photo_folder_is_refused(
    fresh: Callable[[str], Enrolled], tmp_path: Path
) -> None:
    inside, outside, elsewhere = johns(3)
    photos = photo_folder(tmp_path / "photos", {"real/inside.jpg": inside})
    secret = photo_folder(tmp_path / "secret", {"outside.jpg": outside, "dir/elsewhere.jpg": elsewhere})
    (photos / "evil.jpg").symlink_to(secret / "outside.jpg")
    (photos / "evildir").symlink_to(secret / "dir", target_is_directory=True)
    (photos / "alias.jpg").symlink_to(photos / "real/inside.jpg")  # inside: fine
    csv_path = write_csv(
        tmp_path / "r.csv",
        "id,name,photo\n1,Evil,evil.jpg\n2,Evil Dir,evildir/elsewhere.jpg\n3,Alias,alias.jpg\n",
    )
    jobs, errors = registry_jobs(csv_path, photos)
    assert errors == []
    g = fresh("data")
    summary = g.run(jobs)
    assert reasons(summary) == {
        "r.csv:2": "unreadable: evil.jpg: outside the photo folder",
        "r.csv:3": "unreadable: evildir/elsewhere.jpg: outside the photo folder",
    }
    assert [p.display_name for p in g.store.people()] == ["Alias"]


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_registry_csv_with_a_zip_of_photos(fresh: Callable[[str], Enrolled], tmp_path: Path) -> None:
    a, b, c = johns(3)
    archive = make_zip(
        tmp_path / "photos.zip",
        {"photos/a.jpg": a.read_bytes(), "photos/b.jpg": b.read_bytes(), "c.jpg": c.read_bytes()},
    )
    csv_path = write_csv(
        tmp_path / "r.csv",
        "id,name,photo\nA1,Ann,photos/a.jpg\nB2,Bob,photos\\b.jpg\nC3,Cid,c.jpg\nD4,Dan,photos/d.jpg\n",
    )
    jobs, errors = registry_jobs(csv_path, archive)
    assert errors == []
    g = fresh("data")
    summary = g.run(jobs)
    assert summary.counts()["enrolled"] == 3
    assert reasons(summary) == {"r.csv:5": "unreadable: photos/d.jpg: not in photos.zip"}
    assert {p.external_id: p.display_name for p in g.store.people()} == {
        "A1": "Ann",
        "B2": "Bob",
        "C3": "Cid",
    }
    for row in g.store.photos():
        assert (g.store.photos_dir / row["path"]).is_file()


def test_a_zip_slip_name_is_refused_when_the_csv_is_read(tmp_path: Path) -> None:
    a, b = johns(2)
    archive = make_zip(tmp_path / "photos.zip", {"a.jpg": a.read_bytes(), "../evil.jpg": b.read_bytes()})
    csv_path = write_csv(
        tmp_path / "r.csv", "id,name,photo\n1,Ann,a.jpg\n2,Eve,../evil.jpg\n3,Zed,x/../../z.jpg\n"
    )
    jobs, errors = registry_jobs(csv_path, archive)
    assert [j.external_id for j in jobs] == ["1"]
    assert errors == [
        "line 3: photo path '../evil.jpg' must be relative, inside the photo folder or zip",
        "line 4: photo path 'x/../../z.jpg' must be relative, inside the photo folder or zip",
    ]


def test_a_zip_bomb_is_refused_from_its_header(fresh: Callable[[str], Enrolled], tmp_path: Path) -> None:
    big = b"\xff\xd8" + bytes(30 << 20)  # 30 MB of zeros: over MAX_PHOTO_BYTES
    dense = b"\xff\xd8" + bytes(2 << 20)  # 2 MB: under the size limit, but ~1000x compressed
    archive = make_zip(tmp_path / "photos.zip", {"bomb.jpg": big, "dense.jpg": dense})
    with zipfile.ZipFile(archive) as z:
        assert z.getinfo("bomb.jpg").file_size > MAX_PHOTO_BYTES
        info = z.getinfo("dense.jpg")
        assert MAX_ZIP_RATIO * info.compress_size < info.file_size < MAX_PHOTO_BYTES
    source = PhotoSource(archive)
    for name, size in (("bomb.jpg", len(big)), ("dense.jpg", len(dense))):
        with pytest.raises(ImageError, match=rf"{name}: refused \(expands to {size} bytes\)"):
            source.loader(name)()
    csv_path = write_csv(tmp_path / "r.csv", "id,name,photo\n1,Bomb,bomb.jpg\n2,Dense,dense.jpg\n")
    jobs, _ = registry_jobs(csv_path, archive)
    g = fresh("data")
    summary = g.run(jobs)
    assert summary.skip_reasons() == {"unreadable": 2}
    assert all("refused (expands to" in r for r in reasons(summary).values())
    assert g.store.counts()["people"] == 0


def test_a_corrupt_zip(fresh: Callable[[str], Enrolled], tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "r.csv", "id,name,photo\n1,Ann,a.jpg\n")
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"PK\x03\x04 but nothing after it" * 10)
    with pytest.raises(FaceWatchlistError, match=r"garbage\.zip: not a readable zip"):
        registry_jobs(csv_path, garbage)

    # a readable directory, a damaged member: that photo is skipped, with the reason
    photo = johns(1)[0].read_bytes()
    archive = make_zip(tmp_path / "damaged.zip", {"a.jpg": photo}, zipfile.ZIP_STORED)
    blob = bytearray(archive.read_bytes())
    start = bytes(blob).find(photo[:64])
    blob[start + 2000] ^= 0xFF
    archive.write_bytes(bytes(blob))
    jobs, _ = registry_jobs(csv_path, archive)
    g = fresh("data")
    summary = g.run(jobs)
    assert list(reasons(summary).values()) == [reasons(summary)["r.csv:2"]]
    assert reasons(summary)["r.csv:2"].startswith("unreadable: a.jpg: corrupt zip member")
    assert g.store.counts()["photos"] == 0


# --replace and renames ----------------------------------------------------------------------


def registry(
    tmp_path: Path, name: str, rows: list[tuple[str, str, Path]]
) -> tuple[list[PhotoJob], list[str]]:
    folder = tmp_path / f"{name}-photos"
    photo_folder(folder, {f"{i}.jpg": p for i, _, p in rows})
    text = "id,name,photo\n" + "".join(f"{i},{n},{i}.jpg\n" for i, n, _ in rows)
    return registry_jobs(write_csv(tmp_path / f"{name}.csv", text), folder)


def test_replace_takes_people_absent_from_the_registry_off_the_list(
    fresh: Callable[[str], Enrolled], tmp_path: Path
) -> None:
    p1, p2, p3, p4 = johns(4)
    g = fresh("data")
    other = g.store.create_list("other")
    jobs, _ = registry(
        tmp_path, "day1", [("1", "Ann", p1), ("2", "Bob", p2), ("3", "Cid", p3), ("4", "Dan", p4)]
    )
    assert g.run(jobs).counts()["enrolled"] == 4
    dan = g.store.find_person(external_id="4")
    cid = g.store.find_person(external_id="3")
    assert dan is not None
    assert cid is not None
    g.store.add_membership(dan.id, other.id)
    cid_files = [g.store.photos_dir / r["path"] for r in g.store.photos(cid.id)]
    dan_files = [g.store.photos_dir / r["path"] for r in g.store.photos(dan.id)]
    cid_templates = [t.id for t in g.store.templates(PACK.name, cid.id)]

    jobs, _ = registry(tmp_path, "day2", [("1", "Ann", p1), ("2", "Bob", p2)])
    summary = g.run(jobs)
    assert summary.counts()["already_enrolled"] == 2
    assert remove_absent(g.gallery, g.watch_list, jobs, summary, bad_rows=[])
    assert sorted(summary.removed_people) == ["Cid (3)", "Dan (4)"]
    assert summary.counts()["removed_people"] == 2
    assert [p.external_id for p in g.store.people("staff")] == ["1", "2"]
    assert g.store.find_person(external_id="3") is None  # on no other list: deleted
    assert not any(f.exists() for f in cid_files)
    assert g.store.rejections([cid.id], PACK.name) == {}
    assert [w.name for w in g.store.person_lists(dan.id)] == ["other"]  # kept, on the other list
    assert all(f.is_file() for f in dan_files)
    assert g.store.counts()["templates"] == len(g.gallery.index) == 3
    assert not any(t in g.gallery.index for t in cid_templates)
    reopened = Gallery(g.store, PACK)  # the saved index agrees with the store
    assert len(reopened.index) == 3


def test_replace_keeps_a_person_whose_row_is_malformed(
    fresh: Callable[[str], Enrolled], tmp_path: Path
) -> None:
    p1, p2 = johns(2)
    g = fresh("data")
    jobs, _ = registry(tmp_path, "day1", [("1", "Ann", p1), ("2", "Bob", p2)])
    g.run(jobs)
    folder = photo_folder(tmp_path / "day2-photos", {"1.jpg": p1, "2.jpg": p2})
    csv_path = write_csv(tmp_path / "day2.csv", "id,name,photo\n1,Ann,1.jpg\n2,Bob,2.jpg,oops\n")
    jobs, errors = registry_jobs(csv_path, folder)
    assert errors == ["line 3: more fields than columns"]
    summary = g.run(jobs)
    assert not remove_absent(g.gallery, g.watch_list, jobs, summary, bad_rows=errors)
    assert [p.external_id for p in g.store.people("staff")] == ["1", "2"]


def test_a_renamed_person_gets_the_new_name(fresh: Callable[[str], Enrolled], tmp_path: Path) -> None:
    p1, p2 = johns(2)[0], johns(6)[5]  # two photos of the same John
    g = fresh("data")
    jobs, _ = registry(tmp_path, "day1", [("7", "Ann Old", p1)])
    g.run(jobs)
    folder = photo_folder(tmp_path / "day2-photos", {"new.jpg": p2})
    jobs, _ = registry_jobs(write_csv(tmp_path / "day2.csv", "id,name,photo\n7,Ann New,new.jpg\n"), folder)
    assert statuses(g.run(jobs)) == [("enrolled", "")]
    (person,) = g.store.people()
    assert (person.external_id, person.display_name) == ("7", "Ann New")
    assert len(g.store.photos(person.id)) == 2


def test_a_renamed_person_with_the_same_photo_gets_the_new_name(
    fresh: Callable[[str], Enrolled], tmp_path: Path
) -> None:
    (p1,) = johns(1)
    g = fresh("data")
    jobs, _ = registry(tmp_path, "day1", [("7", "Ann Old", p1)])
    g.run(jobs)
    jobs, _ = registry(tmp_path, "day2", [("7", "Ann New", p1)])
    summary = g.run(jobs)
    (person,) = g.store.people()
    assert person.display_name == "Ann New"
    assert statuses(summary) == [("already enrolled", "")]


# crash consistency --------------------------------------------------------------------------


def check_consistent(data: Path) -> int:
    """The store after a crash: integrity, every row's file, no stray file. Returns the templates."""
    with closing(sqlite3.connect(data / "gallery.sqlite3")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    store = Store(data)
    try:
        rows = store.photos()
        for row in rows:
            assert (store.photos_dir / row["path"]).is_file(), row["path"]
        photo_ids = {row["id"] for row in rows}
        templates = store.templates(PACK.name)
        assert {t.photo_id for t in templates} == photo_ids  # one template per photo, no orphans
        assert len(templates) == len(rows)
        for person in {row["person_id"] for row in rows}:
            assert [w.name for w in store.person_lists(person)] == ["staff"]
        store.sweep_photos(grace_s=0)
        on_disk = {
            p.relative_to(store.photos_dir).as_posix() for p in store.photos_dir.rglob("*") if p.is_file()
        }
        assert on_disk == {row["path"] for row in rows}  # no .tmp, no unreferenced photo left
        assert len(Gallery(store, PACK).index) == len(templates)  # rebuilt if stale or missing
        return len(templates)
    finally:
        store.close()


def test_an_import_killed_half_way_is_consistent_and_completes(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "johns"
    shutil.copytree(JOHNS, folder)
    total = len(list(folder.rglob("*.jpg")))
    unique = len({p.read_bytes() for p in folder.rglob("*.jpg")})
    assert (total, unique) == (55, 54)  # John_Shimkus/004.jpg and 005.jpg are the same file
    data = tmp_path / "data"
    argv = ["--data", str(data), "--model-dir", str(model_dir), "import", str(folder), "--list", "staff"]
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "face_watchlist", *argv], stdout=subprocess.DEVNULL, stderr=stderr
        )
    db_path = data / "gallery.sqlite3"
    enrolled = 0
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if db_path.exists():
                try:
                    with closing(sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=5)) as db:
                        enrolled = db.execute("SELECT COUNT(*) FROM templates").fetchone()[0]
                except sqlite3.OperationalError:  # not migrated yet
                    enrolled = 0
                if enrolled > 0:
                    break
            time.sleep(0.005)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    assert process.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    assert enrolled > 0

    before = check_consistent(data)
    assert enrolled <= before < unique  # killed half-way

    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["enrolled"] + report["already_enrolled"] == total
    assert report["enrolled"] == unique - before  # each photo exactly once
    assert report["skipped"] == 0
    assert report["bad_rows"] == [] and report["removed"] == []  # noqa: PT018
    assert check_consistent(data) == unique
    store = Store(data)
    try:
        assert store.counts()["people"] == 5
        assert len(store.photos()) == unique
        gallery = Gallery(store, PACK)
        assert len(gallery.index) == unique
    finally:
        store.close()


def test_outcome_reason_kinds() -> None:
    summary = Summary()
    summary.add(Outcome("a", "A", "skipped", "unreadable: a.jpg: no such file"))
    summary.add(Outcome("b", "B", "skipped", "too small (20 px < 32 px)"))
    summary.add(Outcome("c", "C", "enrolled"))
    assert summary.skip_reasons() == {"unreadable": 1, "too small": 1}
