"""The audit log on a real gallery database: the chain, tamper detection (edit, delete, reorder,
tail cut, rewrite caught by an anchor), no biometric data in details, atomicity with the change it
records, the gallery operations that write it, export and the CLI."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.cli import main
from face_watchlist.gallery.store import Store, StoreError
from face_watchlist.trust.audit import GENESIS, AuditError, AuditLog, check_chain, entry_hash

JOHNS = Path(__file__).resolve().parent / "data/faces/dlib_johns/images"


class Clock:
    """A controlled clock: each reading one second later."""

    def __init__(self) -> None:
        self.now = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", actor="cli:tester", clock=Clock())
    yield s
    s.close()


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("service", "test.entry", f"thing:{i}", {"n": i, "camera": "gate"})


def tamper(store: Store, *sql: str) -> None:
    """What someone with the file could do: a second connection, the guard triggers dropped."""
    with closing(sqlite3.connect(store.path)) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute("DROP TRIGGER audit_head_forward")
        for statement in sql:
            db.execute(statement)
        db.commit()


# the chain -----------------------------------------------------------------------------------


def test_entries_are_chained_with_the_documented_hash(store: Store) -> None:
    fill(store.audit, 3)
    entries = store.audit.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    first = entries[0]
    canonical = json.dumps(
        {
            "action": first.action,
            "actor": first.actor,
            "details": json.loads(first.details),
            "prev_hash": first.prev_hash,
            "subject": first.subject,
            "time": first.time,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert first.time == "2025-09-01T08:00:01.000000+00:00"
    report = store.audit.verify()
    assert report.ok
    assert report.entries == 3
    assert report.head_seq == 3
    assert report.head_hash == entries[-1].hash


def test_an_empty_log_verifies(store: Store) -> None:
    report = store.audit.verify()
    assert report.ok
    assert report.entries == 0
    assert report.head_seq == 0


def test_the_program_cannot_rewrite_history(store: Store) -> None:
    fill(store.audit, 2)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("UPDATE audit SET actor = 'service' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM audit WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="only moves forward"):
        store.db.execute("UPDATE audit_head SET seq = 1")


# tamper detection ----------------------------------------------------------------------------


def test_an_edited_entry_is_found(store: Store) -> None:
    fill(store.audit, 10)
    tamper(store, """UPDATE audit SET details = '{"camera":"gate","n":99}' WHERE seq = 6""")
    report = store.audit.verify()
    assert not report.ok
    assert (report.first_broken, report.reason, report.entries) == (6, "edited", 5)


def test_an_entry_edited_and_rehashed_is_found_at_that_entry(store: Store) -> None:
    fill(store.audit, 10)
    e = store.audit.entries()[5]
    forged = entry_hash(e.time, "cli:someone_else", e.action, e.subject, e.details, e.prev_hash)
    tamper(store, f"UPDATE audit SET actor = 'cli:someone_else', hash = '{forged}' WHERE seq = 6")
    report = store.audit.verify()
    assert (report.ok, report.first_broken, report.reason) == (False, 6, "edited")


def test_a_removed_entry_is_found(store: Store) -> None:
    fill(store.audit, 10)
    tamper(store, "DELETE FROM audit WHERE seq = 4")
    report = store.audit.verify()
    assert (report.ok, report.first_broken, report.reason) == (False, 5, "removed")
    assert "4..4" in report.message


def test_removed_first_entries_are_found(store: Store) -> None:
    fill(store.audit, 10)
    tamper(store, "DELETE FROM audit WHERE seq <= 2")
    report = store.audit.verify()
    assert (report.ok, report.first_broken, report.reason) == (False, 3, "removed")


def test_reordered_entries_are_found(store: Store) -> None:
    fill(store.audit, 10)
    # swap entries 4 and 5 (renumber through a free seq)
    tamper(
        store,
        "UPDATE audit SET seq = 1000 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = 5",
        "UPDATE audit SET seq = 5 WHERE seq = 1000",
    )
    report = store.audit.verify()
    assert (report.ok, report.first_broken, report.reason) == (False, 4, "reordered")


def test_a_cut_tail_is_found_by_the_head(store: Store) -> None:
    fill(store.audit, 10)
    tamper(store, "DELETE FROM audit WHERE seq > 7")
    report = store.audit.verify()
    assert (report.ok, report.first_broken, report.reason, report.entries) == (False, 8, "removed", 7)


def test_a_rewritten_tail_with_its_head_is_caught_only_by_an_anchor(store: Store) -> None:
    fill(store.audit, 10)
    anchor = store.audit.head()
    tail = store.audit.entries()[6]
    tamper(
        store,
        "DELETE FROM audit WHERE seq > 7",
        f"UPDATE audit_head SET seq = 7, hash = '{tail.hash}'",
    )
    assert store.audit.verify().ok  # the documented limit: a consistent rewrite passes alone
    report = store.audit.verify(anchor=anchor)
    assert (report.ok, report.first_broken, report.reason) == (False, 8, "removed")
    fill(store.audit, 5)  # history rewritten and then continued: the anchor's entry differs
    report = store.audit.verify(anchor=anchor)
    assert (report.ok, report.first_broken, report.reason) == (False, 10, "edited")


# what details may hold -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"embedding": np.zeros(128, dtype=np.float32)}, "an array"),
        ({"probe": [0.1] * 128}, "looks like an embedding"),
        ({"nested": {"deeper": list(range(20))}}, "looks like an embedding"),
        ({"blob": b"\x00\x01"}, "binary data"),
        ({"score": float("nan")}, "finite"),
        ({"obj": object()}, "not a JSON value"),
        ({1: "x"}, "not a string"),
    ],
)
def test_biometric_looking_details_are_refused(
    store: Store, details: dict[object, object], message: str
) -> None:
    with pytest.raises(AuditError, match=message):
        store.audit.append("service", "decision.record", "event:1", details)  # type: ignore[arg-type]
    assert store.audit.entries() == []


def test_scores_ids_and_short_lists_are_fine(store: Store) -> None:
    seq = store.audit.append(
        "ha:alice",
        "review.confirm",
        "decision:7",
        {"score": np.float32(0.61), "person_id": np.int64(3), "box": [1, 2, 3, 4], "names": ["a"] * 50},
    )
    assert json.loads(store.audit.entries()[0].details)["score"] == pytest.approx(0.61, abs=1e-6)
    assert seq == 1


@pytest.mark.parametrize("actor", ["", "root", "cli:", "web:bob", "ha:bob\nforged"])
def test_unknown_actors_are_refused(store: Store, actor: str) -> None:
    with pytest.raises(AuditError, match="actor"):
        store.audit.append(actor, "x.y")


def test_bad_actions_are_refused(store: Store) -> None:
    with pytest.raises(AuditError, match="action"):
        store.audit.append("service", "Drop Table")


# atomic with the change ----------------------------------------------------------------------


def test_an_entry_commits_and_rolls_back_with_its_change(store: Store) -> None:
    def change_then_fail() -> None:
        with store.transaction() as db:
            db.execute(
                "INSERT INTO lists (name, kind, policy, created_at) VALUES ('x','watch','immediate','t')"
            )
            store.audit.append("service", "list.create", "list:x", {}, conn=db)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert store.audit.entries() == []
    assert store.lists() == []
    assert store.audit.verify().ok
    store.create_list("y")
    assert [e.action for e in store.audit.entries()] == ["list.create"]


def test_a_refused_change_leaves_no_entry(store: Store) -> None:
    store.create_list("staff")
    with pytest.raises(StoreError):
        store.create_list("staff")
    assert [e.action for e in store.audit.entries()] == ["list.create"]


def test_two_handles_append_to_one_chain(store: Store, tmp_path: Path) -> None:
    other = Store(tmp_path / "data", actor="service")
    try:
        for i in range(20):
            (store if i % 2 else other).audit.append("service", "test.entry", None, {"i": i})
    finally:
        other.close()
    assert store.audit.verify().ok
    assert store.audit.head()[0] == 20


# gallery operations --------------------------------------------------------------------------


def test_gallery_changes_are_recorded_without_biometrics(store: Store) -> None:
    photo = (JOHNS / "John_Simm/001.jpg").read_bytes()
    watch = store.create_list("intruders")
    staff = store.create_list("staff", "known", actor="ha:admin")
    ann = store.add_person("Ann", "R-1")
    store.enrol(
        ann.id,
        watch.id,
        photo,
        hashlib.sha256(photo).hexdigest(),
        ".jpg",
        (1.0, 2.0, 3.0, 4.0),
        "ann.jpg",
        "opencv-zoo",
        np.ones(128, dtype=np.float32) / np.sqrt(128),
        (100.0, 50.0, 0.9, 0.95),
        "enrol",
    )
    store.add_membership(ann.id, staff.id)
    store.add_membership(ann.id, staff.id)  # already there: nothing to record
    store.update_person(ann.id, display_name="Anne")
    store.update_list("staff", threshold=0.6)
    store.add_rejection(ann.id, "opencv-zoo", np.ones(128, dtype=np.float32), "ha:bob", "not her")
    store.add_template(
        ann.id, 1, "scrfd-sface", np.ones(128, dtype=np.float32), (1.0, 1.0, 1.0, 1.0), "reembed"
    )
    store.remove_membership(ann.id, staff.id)
    store.delete_list("intruders")  # Ann is on no list any more: deleted with it
    actions = [(e.actor, e.action, e.subject) for e in store.audit.entries()]
    assert actions == [
        ("cli:tester", "list.create", "list:1"),
        ("ha:admin", "list.create", "list:2"),
        ("cli:tester", "person.create", "person:1"),
        ("cli:tester", "membership.add", "person:1"),
        ("cli:tester", "photo.enrol", "person:1"),
        ("cli:tester", "membership.add", "person:1"),
        ("cli:tester", "person.update", "person:1"),
        ("cli:tester", "list.update", "list:2"),
        ("cli:tester", "rejection.add", "person:1"),
        ("cli:tester", "template.add", "person:1"),
        ("cli:tester", "membership.remove", "person:1"),
        ("cli:tester", "list.delete", "list:1"),
        ("cli:tester", "person.delete", "person:1"),
    ]
    deleted = json.loads(store.audit.entries(action="person.delete")[0].details)
    assert deleted == {"photos": 1, "reason": "on no list any more", "templates": 2, "matches": 0}
    # no float vectors anywhere in the log, whatever the entry
    for e in store.audit.entries():
        numbers = [v for v in json.loads(e.details).values() if isinstance(v, float)]
        assert len(numbers) <= 1
    assert store.audit.verify().ok


def test_registry_import_records_one_summary_and_each_enrolment(tmp_path: Path, model_dir: Path) -> None:
    people = tmp_path / "people"
    for name in ("John_Simm", "John_Savage"):
        (people / name).mkdir(parents=True)
        for n in ("001", "002"):
            (people / name / f"{n}.jpg").write_bytes((JOHNS / name / f"{n}.jpg").read_bytes())
    data = tmp_path / "data"
    args = ["--data", str(data), "--model-dir", str(model_dir)]
    assert main([*args, "import", str(people), "--list", "staff"]) == 0
    with closing(Store(data)) as store:
        entries = store.audit.entries()
        assert all(e.actor.startswith("cli:") for e in entries)
        assert [e.action for e in entries].count("photo.enrol") == 4
        (summary,) = [json.loads(e.details) for e in entries if e.action == "import"]
        assert summary["enrolled"] == 4
        assert summary["list"] == "staff"
        assert summary["source"] == "people"
        assert entries[-1].action == "import"


# export and CLI ------------------------------------------------------------------------------


def test_export_csv_and_json_since(store: Store, tmp_path: Path) -> None:
    fill(store.audit, 6)  # times 08:00:01 .. 08:00:06
    assert store.audit.export(tmp_path / "all.csv", "csv") == 6
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert json.loads(rows[0]["details"]) == {"camera": "gate", "n": 0}
    assert store.audit.export(tmp_path / "late.json", "json", since="2025-09-01T10:00:04+02:00") == 3
    late = json.loads((tmp_path / "late.json").read_text())
    assert [e["seq"] for e in late] == [4, 5, 6]
    assert check_chain(late)
    late[1]["details"]["n"] = 42
    assert not check_chain(late)
    with pytest.raises(AuditError, match="not an ISO"):
        store.audit.entries(since="yesterday")


def test_cli_verify_list_export_and_tamper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    with closing(Store(data)) as store:
        store.create_list("intruders")
        fill(store.audit, 4)
    assert main(["--data", str(data), "audit", "verify"]) == 0
    assert "intact: 5 entries" in capsys.readouterr().out
    assert main(["--data", str(data), "audit", "head"]) == 0
    anchor = capsys.readouterr().out.strip()
    assert anchor.startswith("5:")
    assert main(["--data", str(data), "audit", "list", "--action", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in listed] == ["list.create"]
    out = tmp_path / "audit.csv"
    assert main(["--data", str(data), "audit", "export", "--out", str(out), "--format", "csv"]) == 0
    assert len(list(csv.DictReader(out.open()))) == 5
    with closing(Store(data)) as store:
        assert store.audit.entries()[-1].action == "audit.export"  # the export is recorded too
        tamper(store, "DELETE FROM audit WHERE seq = 2")
    assert main(["--data", str(data), "audit", "verify", "--anchor", anchor]) == 2
    assert "BROKEN at entry 3 (removed)" in capsys.readouterr().out
    assert main(["--data", str(tmp_path / "nothing"), "audit", "verify"]) == 1
