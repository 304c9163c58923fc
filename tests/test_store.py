"""The SQLite store on real files: migrations, lists, people, memberships, photos on disk, the
after-commit unlink of photo files, the sweep of files a crash left, rejections, template batches."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.gallery.store import MIGRATIONS, Person, Store, StoreError, WatchList

JOHNS = Path(__file__).resolve().parent / "data/faces/dlib_johns/images"
PACK = "opencv-zoo"
QUALITY = (100.0, 50.0, 0.9, 0.95)


def photos() -> list[bytes]:
    """Real photo bytes (the store keeps them as they are; no model is needed here)."""
    return [p.read_bytes() for p in sorted(JOHNS.rglob("*.jpg"))]


PHOTOS = photos()


def unit(seed: int, dim: int = 128) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def enrol(
    store: Store, person: Person, watch_list: WatchList, photo: bytes, pack: str = PACK, seed: int = 0
) -> int:
    return store.enrol(
        person.id,
        watch_list.id,
        photo,
        hashlib.sha256(photo).hexdigest(),
        ".jpg",
        (10.0, 20.0, 110.0, 140.0),
        "test",
        pack,
        unit(seed),
        QUALITY,
        "enrol",
    )


def photo_files(store: Store) -> set[Path]:
    return {p for p in store.photos_dir.rglob("*") if p.is_file()} if store.photos_dir.exists() else set()


def count(store: Store, table: str) -> int:
    return int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data")
    yield s
    s.close()


# migrations ---------------------------------------------------------------------------------


def schema(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_fresh_database_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    s = Store(tmp_path)
    try:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in s.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"lists", "people", "memberships", "photos", "templates", "rejections"} <= tables
        assert s.counts() == dict.fromkeys(
            ("lists", "people", "photos", "templates", "rejections", "decisions"), 0
        )
    finally:
        s.close()


def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.create_list("staff", "known")
    s.close()
    before = schema(tmp_path / "gallery.sqlite3")
    s = Store(tmp_path)
    try:
        assert schema(tmp_path / "gallery.sqlite3") == before
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [w.name for w in s.lists()] == ["staff"]
    finally:
        s.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "gallery.sqlite3")) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match=r"newer than this program knows.*upgrade"):
        Store(tmp_path)
    assert user_version(tmp_path / "gallery.sqlite3") == len(MIGRATIONS) + 1  # left alone


def test_a_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "gallery.sqlite3").write_bytes(b"this is not a database\n" * 400)
    with pytest.raises(StoreError, match="cannot open the gallery database"):
        Store(tmp_path)


# lists --------------------------------------------------------------------------------------


def test_lists_crud(store: Store) -> None:
    watch = store.create_list("intruders")
    assert (watch.kind, watch.policy, watch.threshold, watch.margin) == ("watch", "review_first", None, None)
    known = store.create_list("staff", "known", threshold=0.5, margin=0.1)
    assert (known.kind, known.policy, known.threshold, known.margin) == ("known", "immediate", 0.5, 0.1)
    assert store.create_list("custody", "watch", policy="immediate").policy == "immediate"
    assert [w.name for w in store.lists()] == ["custody", "intruders", "staff"]

    with pytest.raises(StoreError, match="already exists"):
        store.create_list("staff")
    with pytest.raises(StoreError, match="no list named"):
        store.get_list("nope")

    changed = store.update_list("staff", threshold=0.6, margin=None, policy="review_first")
    assert (changed.threshold, changed.margin, changed.policy) == (0.6, None, "review_first")
    with pytest.raises(StoreError, match="unknown list settings: colour"):
        store.update_list("staff", colour="red")
    with pytest.raises(StoreError, match="cannot update list"):
        store.update_list("staff", kind="enemies")  # the CHECK constraint
    assert store.get_list("staff").kind == "known"
    with pytest.raises(StoreError, match="no list named"):
        store.update_list("nope", threshold=0.5)


def test_rename_a_list(store: Store) -> None:
    staff = store.create_list("staff", "known")
    store.create_list("intruders")
    renamed = store.update_list("staff", name="teachers")
    assert (renamed.id, renamed.name, renamed.kind) == (staff.id, "teachers", "known")
    with pytest.raises(StoreError, match="no list named"):
        store.get_list("staff")
    with pytest.raises(StoreError, match="cannot update list"):
        store.update_list("teachers", name="intruders")


def test_ensure_list_defaults(store: Store) -> None:
    made = store.ensure_list("new")
    assert (made.kind, made.policy, made.threshold, made.margin) == ("watch", "review_first", None, None)
    assert store.ensure_list("new") == made
    known = store.create_list("staff", "known")
    assert known.policy == "immediate"
    assert store.ensure_list("staff") == known  # an existing list is not changed


# people -------------------------------------------------------------------------------------


def test_people_crud(store: Store) -> None:
    ann = store.add_person("Ann", "R-1", notes="year 3")
    bob = store.add_person("Bob")
    ann2 = store.add_person("Ann")  # display names need not be unique
    assert store.get_person(ann.id) == ann
    assert (ann.display_name, ann.external_id, ann.notes) == ("Ann", "R-1", "year 3")
    assert store.find_person(external_id="R-1") == ann
    assert store.find_person(external_id="R-404") is None
    assert store.find_person(display_name="Ann") == ann  # the first of the two
    assert store.find_person(display_name="Nobody") is None
    assert [p.id for p in store.people()] == [ann.id, ann2.id, bob.id]

    updated = store.update_person(bob.id, display_name="Robert", external_id="R-2", notes="n")
    assert (updated.display_name, updated.external_id, updated.notes) == ("Robert", "R-2", "n")
    with pytest.raises(StoreError, match=f"cannot update person {ann2.id}"):
        store.update_person(ann2.id, external_id="R-1")  # external ids are unique
    with pytest.raises(StoreError, match="unknown person fields: age"):
        store.update_person(ann.id, age=9)
    with pytest.raises(StoreError, match="no person with id 999"):
        store.get_person(999)
    with pytest.raises(StoreError, match="no person with id 999"):
        store.update_person(999, notes="x")
    with pytest.raises(StoreError, match="no person with id 999"):
        store.delete_person(999)

    store.delete_person(ann2.id)
    assert [p.display_name for p in store.people()] == ["Ann", "Robert"]


def test_add_person_with_a_taken_external_id_is_a_store_error(store: Store) -> None:
    store.add_person("Ann", "R-1")
    with pytest.raises(StoreError):
        store.add_person("Bob", "R-1")


# memberships and deletion -------------------------------------------------------------------


def test_removing_the_last_membership_deletes_the_person_with_photos_and_templates(store: Store) -> None:
    staff, visitors = store.create_list("staff"), store.create_list("visitors")
    ann = store.add_person("Ann")
    templates = [enrol(store, ann, staff, PHOTOS[0], seed=1), enrol(store, ann, staff, PHOTOS[1], seed=2)]
    store.add_membership(ann.id, visitors.id)
    store.add_membership(ann.id, visitors.id)  # twice is once
    files = photo_files(store)
    assert len(files) == 2
    assert [w.name for w in store.person_lists(ann.id)] == ["staff", "visitors"]

    assert store.remove_membership(ann.id, staff.id) == []  # still on visitors
    assert store.get_person(ann.id) == ann
    assert photo_files(store) == files

    assert sorted(store.remove_membership(ann.id, visitors.id)) == sorted(templates)
    with pytest.raises(StoreError):
        store.get_person(ann.id)
    assert photo_files(store) == set()
    assert store.templates(PACK) == []
    assert store.counts() | {"lists": 0} == dict.fromkeys(store.counts(), 0)
    assert count(store, "memberships") == 0


def test_delete_list_deletes_only_people_on_no_other_list(store: Store) -> None:
    staff, visitors = store.create_list("staff"), store.create_list("visitors")
    ann, bob = store.add_person("Ann"), store.add_person("Bob")
    ann_template = enrol(store, ann, staff, PHOTOS[0], seed=1)
    bob_template = enrol(store, bob, staff, PHOTOS[1], seed=2)
    store.add_membership(bob.id, visitors.id)
    bob_files = {p for p in photo_files(store) if p.parent.name == str(bob.id)}
    assert len(bob_files) == 1

    assert store.delete_list("staff") == [ann_template]
    assert [w.name for w in store.lists()] == ["visitors"]
    assert [p.display_name for p in store.people()] == ["Bob"]
    assert photo_files(store) == bob_files
    assert [t.id for t in store.templates(PACK)] == [bob_template]
    assert [w.name for w in store.person_lists(bob.id)] == ["visitors"]
    with pytest.raises(StoreError, match="no list named"):
        store.delete_list("staff")


def test_generation_bumps_with_every_template_change(store: Store) -> None:
    staff = store.create_list("staff")
    ann, bob = store.add_person("Ann"), store.add_person("Bob")
    assert store.generation(PACK) == 0
    enrol(store, ann, staff, PHOTOS[0])
    assert store.generation(PACK) == 1
    enrol(store, bob, staff, PHOTOS[1])
    assert store.generation(PACK) == 2
    photo_id = store.photos(ann.id)[0]["id"]
    store.add_template(ann.id, photo_id, "scrfd-sface", unit(5), QUALITY, "reembed")
    assert (store.generation(PACK), store.generation("scrfd-sface")) == (2, 1)
    store.add_template(ann.id, photo_id, "scrfd-sface", unit(6), QUALITY, "reembed")  # replaces
    assert store.generation("scrfd-sface") == 2
    assert len(store.templates("scrfd-sface")) == 1
    store.delete_person(ann.id)
    assert (store.generation(PACK), store.generation("scrfd-sface")) == (3, 3)
    store.update_person(bob.id, display_name="Robert")  # not a template change
    store.create_list("other")
    assert store.generation(PACK) == 3


# enrolment atomicity and photo files --------------------------------------------------------


def test_enrol_keeps_the_photo_file_and_rows_together(store: Store) -> None:
    staff = store.create_list("staff")
    ann = store.add_person("Ann")
    template_id = enrol(store, ann, staff, PHOTOS[0], seed=3)
    (row,) = store.photos(ann.id)
    assert row["path"] == f"{ann.id}/{hashlib.sha256(PHOTOS[0]).hexdigest()}.jpg"
    assert (store.photos_dir / row["path"]).read_bytes() == PHOTOS[0]
    assert row["face_box"] == "10.0,20.0,110.0,140.0"
    (template,) = store.templates(PACK, ann.id)
    assert (template.id, template.photo_id) == (template_id, row["id"])
    np.testing.assert_array_equal(template.embedding, unit(3))
    assert store.photo_by_hash(hashlib.sha256(PHOTOS[0]).hexdigest()) == (row["id"], ann.id)
    assert [w.name for w in store.person_lists(ann.id)] == ["staff"]


def test_enrol_of_a_duplicate_photo_leaves_no_file(store: Store) -> None:
    staff = store.create_list("staff")
    ann, bob = store.add_person("Ann"), store.add_person("Bob")
    enrol(store, ann, staff, PHOTOS[0])
    before = {p: p.read_bytes() for p in photo_files(store)}
    generation = store.generation(PACK)
    with pytest.raises(StoreError, match="already enrolled"):
        enrol(store, bob, staff, PHOTOS[0])  # the same photo for someone else
    with pytest.raises(StoreError, match="already enrolled"):
        enrol(store, ann, staff, PHOTOS[0])  # and for the same person
    assert {p: p.read_bytes() for p in photo_files(store)} == before  # no .tmp, no second copy
    assert store.generation(PACK) == generation
    assert store.counts()["templates"] == 1
    assert store.person_lists(bob.id) == []  # the failed enrolment added no membership


def test_enrol_on_a_deleted_list_does_not_claim_a_duplicate(store: Store) -> None:
    staff = store.create_list("staff")
    ann = store.add_person("Ann")
    store.delete_list("staff")
    with pytest.raises(StoreError) as raised:
        enrol(store, ann, staff, PHOTOS[0])
    assert "already enrolled" not in str(raised.value)


def test_a_failed_transaction_keeps_the_photo_files(store: Store) -> None:
    staff = store.create_list("staff")
    ann = store.add_person("Ann")
    enrol(store, ann, staff, PHOTOS[0])
    files = photo_files(store)

    def delete_then_fail() -> None:
        with store.transaction():
            store._delete_people([ann.id])  # schedules the unlink for after the commit
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        delete_then_fail()
    assert store.get_person(ann.id) == ann  # rolled back
    assert len(store.templates(PACK)) == 1
    assert photo_files(store) == files  # and the file was not unlinked
    store.add_person("Bob")  # a later, unrelated commit does not unlink it either
    assert photo_files(store) == files
    store.delete_person(ann.id)
    assert photo_files(store) == set()


def test_sweep_removes_unreferenced_files_only(store: Store) -> None:
    staff = store.create_list("staff")
    ann = store.add_person("Ann")
    enrol(store, ann, staff, PHOTOS[0])
    kept = photo_files(store)
    # what a crash leaves: a temporary file mid-write, a file renamed in before the commit
    (store.photos_dir / str(ann.id) / ".abc.jpg.tmp").write_bytes(PHOTOS[1])
    (store.photos_dir / "999").mkdir()
    (store.photos_dir / "999" / "deadbeef.jpg").write_bytes(PHOTOS[2])
    assert store.sweep_photos(grace_s=0) == 2
    assert photo_files(store) == kept
    assert store.sweep_photos(grace_s=0) == 0


def test_sweep_without_a_photo_folder(store: Store) -> None:
    assert store.sweep_photos() == 0


def test_sweep_does_not_break_an_enrolment_in_flight(tmp_path: Path) -> None:
    setup = Store(tmp_path)
    staff, ann = setup.create_list("staff"), setup.add_person("Ann")
    setup.close()
    writer = Store(tmp_path)
    writer.db.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
    outcome: dict[str, object] = {}

    def enrol_in_thread() -> None:
        s = Store(tmp_path)
        try:
            outcome["template"] = enrol(s, ann, staff, PHOTOS[0])
        except BaseException as err:
            outcome["error"] = err
        finally:
            s.close()

    thread = threading.Thread(target=enrol_in_thread)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob("photos/*/*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert list(tmp_path.glob("photos/*/*.tmp")), "the enrolment never wrote its temporary file"
        sweeper = Store(tmp_path)  # e.g. `face-watchlist lists` run meanwhile
        sweeper.sweep_photos()
        sweeper.close()
    finally:
        writer.db.execute("COMMIT")
        writer.close()
        thread.join(30)
    assert "error" not in outcome, outcome
    check = Store(tmp_path)
    try:
        (row,) = check.photos()
        assert (check.photos_dir / row["path"]).is_file()
    finally:
        check.close()


# rejections, templates ----------------------------------------------------------------------


def test_rejections_round_trip(store: Store) -> None:
    staff = store.create_list("staff")
    ann, bob = store.add_person("Ann"), store.add_person("Bob")
    enrol(store, ann, staff, PHOTOS[0])
    store.add_rejection(ann.id, PACK, unit(10), "reviewer", "a poster")
    store.add_rejection(ann.id, PACK, unit(11), "reviewer")
    store.add_rejection(bob.id, "scrfd-sface", unit(12), "reviewer")
    found = store.rejections([ann.id, bob.id], PACK)
    assert list(found) == [ann.id]
    np.testing.assert_array_equal(np.stack(found[ann.id]), np.stack([unit(10), unit(11)]))
    assert list(store.rejections([bob.id], "scrfd-sface")) == [bob.id]
    assert store.rejections([], PACK) == {}
    store.delete_person(ann.id)
    assert store.rejections([ann.id], PACK) == {}
    assert store.counts()["rejections"] == 1


def test_template_batches_yield_every_template_in_id_order(store: Store) -> None:
    staff = store.create_list("staff")
    people = [store.add_person(f"P{i}") for i in range(3)]
    for n in range(8):
        person = people[n % 3]
        enrol(store, person, staff, PHOTOS[n], seed=n)
        if n % 3 == 0:  # another pack's templates interleaved: never in this pack's batches
            photo = store.photo_by_hash(hashlib.sha256(PHOTOS[n]).hexdigest())
            assert photo is not None
            store.add_template(person.id, photo[0], "scrfd-sface", unit(100 + n), QUALITY, "reembed")
    store.delete_person(people[1].id)  # gaps in the ids
    expected = {t.id: t.embedding for t in store.templates(PACK)}
    assert len(expected) == 5
    np.testing.assert_array_equal(expected[min(expected)], unit(0))

    batches = list(store.template_batches(PACK, size=2))
    assert [len(ids) for ids, _ in batches] == [2, 2, 1]
    ids = np.concatenate([ids for ids, _ in batches])
    assert ids.dtype == np.int64
    assert ids.tolist() == sorted(expected)
    for batch_ids, vectors in batches:
        assert vectors.shape == (len(batch_ids), 128)
        assert vectors.dtype == np.float32
        for template_id, vector in zip(batch_ids, vectors, strict=True):
            np.testing.assert_array_equal(vector, expected[int(template_id)])
    assert [len(i) for i, _ in store.template_batches(PACK, size=5)] == [5]
    assert list(store.template_batches("buffalo_l")) == []


def test_template_owners_and_memberships_in_chunks(store: Store) -> None:
    staff, visitors = store.create_list("staff"), store.create_list("visitors", "known")
    ann, bob = store.add_person("Ann"), store.add_person("Bob")
    a = enrol(store, ann, staff, PHOTOS[0])
    b = enrol(store, bob, visitors, PHOTOS[1])
    store.add_membership(ann.id, visitors.id)
    ids = list(range(1, 1300))  # more than one chunk of 500, mostly unknown ids
    assert store.template_owners(ids) == {a: ann.id, b: bob.id}
    found = store.memberships([ann.id, bob.id, 4242])
    assert sorted(w.name for w in found[ann.id]) == ["staff", "visitors"]
    assert [w.name for w in found[bob.id]] == ["visitors"]
    assert found[4242] == []
