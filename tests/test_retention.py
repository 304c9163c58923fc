"""The retention schedule with a controlled clock, and a person's data exported and deleted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.config import load_settings
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.records import Evidence, Records
from face_watchlist.gallery.store import Store, StoreError
from face_watchlist.trust.person import delete_person, export_person
from face_watchlist.trust.retention import DAY, purge

DATA = Path(__file__).parent / "data" / "faces" / "face_recognition_knn"
RETENTION = load_settings({}).retention
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data")
    yield s  # type: ignore[misc]
    s.close()


def _match(records: Records, person_id: int, list_id: int, age_days: float, state: str, n: int) -> int:
    photo = (DATA / "probe" / "obama1.jpg").read_bytes()
    probe = np.ones(128, np.float32) / np.sqrt(128)
    return records.add(
        event_id=f"e{n}",
        camera="gate",
        result="match",
        attempts=1,
        created_at=NOW - age_days * DAY,
        person_id=person_id,
        list_id=list_id,
        score=0.7,
        review_state=state,  # type: ignore[arg-type]
        evidence=Evidence(photo, (100.0, 80.0, 220.0, 230.0), probe, "opencv-zoo"),
    ).id


def test_schedule_with_a_controlled_clock(store: Store) -> None:
    records = Records(store, 10**8)
    person = store.add_person("Jane Doe")
    watch = store.ensure_list("registry")
    store.add_membership(person.id, watch.id)
    fresh = _match(records, person.id, watch.id, 1, "alert", 1)
    old_alert = _match(records, person.id, watch.id, 31, "alert", 2)
    old_pending = _match(records, person.id, watch.id, 20, "pending_review", 3)
    ancient = records.add(
        event_id="u", camera="gate", result="unknown", attempts=1, created_at=NOW - 400 * DAY
    )

    assert purge(records, RETENTION, now=NOW, dry_run=True) == {
        "evidence": 1,
        "decisions": 1,
        "stray_evidence_files": 0,
        "stray_photo_files": 0,
    }
    assert records.get(old_alert).has_evidence  # a dry run changes nothing
    entries = len(store.audit.entries())
    counts = purge(records, RETENTION, now=NOW)
    assert (counts["evidence"], counts["decisions"]) == (1, 1)
    assert not records.get(old_alert).has_evidence
    assert records.get(fresh).has_evidence
    assert records.get(old_pending).has_evidence  # a reviewer may still need it (pending_days: 30)
    with pytest.raises(StoreError):
        records.get(ancient.id)
    (entry,) = store.audit.entries()[entries:]
    assert (entry.action, json.loads(entry.details)["evidence"]) == ("purge", 1)
    # eleven days later the unreviewed match has waited over 30 days: its evidence goes too
    assert purge(records, RETENTION, now=NOW + 11 * DAY)["evidence"] == 1
    assert not records.get(old_pending).has_evidence
    assert purge(records, RETENTION, now=NOW + 11 * DAY) == dict.fromkeys(counts, 0)  # nothing left to do
    assert len(store.audit.entries()) == entries + 2  # an idle purge leaves no entry


def test_person_export_then_delete(tmp_path: Path, store: Store, pipeline: FacePipeline) -> None:
    gallery = Gallery(store, pipeline.spec)
    watch = store.ensure_list("registry")
    enroll.Enroller(gallery, pipeline, load_settings({}).gate, "enrol").run(
        enroll.folder_jobs(DATA / "enroll"), watch
    )
    obama = store.find_person(display_name="obama")
    assert obama is not None
    records = Records(store, 10**8)
    decision = _match(records, obama.id, watch.id, 1, "pending_review", 1)
    records.review(decision, "reject", "ha:frontdesk")

    out = tmp_path / "export" / "obama.zip"
    counts = export_person(gallery, records, obama.id, out, "cli:dpo")
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        summary = json.loads(archive.read("person.json"))
    assert counts["photos"] == len(store.photos(obama.id)) > 0
    assert {f"photos/{row['path']}" for row in store.photos(obama.id)} <= names
    assert {f"evidence/{decision}-face.jpg", f"evidence/{decision}-snapshot.jpg"} <= names
    assert summary["person"]["display_name"] == "obama"
    assert [m["id"] for m in summary["matches"]] == [decision]
    assert {"photo.enrol", "review.reject"} <= {e["action"] for e in summary["audit"]}
    assert "embedding" not in json.dumps(summary["templates"])

    others = store.counts()["templates"] - len(store.templates(pipeline.spec.name, obama.id))
    removed = delete_person(gallery, obama.id, "cli:dpo")
    assert removed > 0
    assert store.counts()["templates"] == others
    assert store.rejections([obama.id], pipeline.spec.name) == {}
    assert not any(p.is_file() for p in (store.photos_dir / str(obama.id)).rglob("*"))
    assert not any(p.is_file() for p in store.evidence_dir.rglob("*"))
    assert records.query(person_id=obama.id) == ([], 0)
    probe = pipeline.analyse(pipeline_image(DATA / "probe" / "obama1.jpg"))[0].embedding
    assert probe is not None
    assert all(found.person_id != obama.id for found in gallery.candidates(probe).ranked)  # index too
    deleted = store.audit.entries(action="person.delete")[-1]
    assert deleted.actor == "cli:dpo"
    assert "embedding" not in deleted.details
    assert store.audit.verify().ok


def pipeline_image(path: Path) -> np.ndarray:
    from face_watchlist.faces.images import load_image

    return load_image(path)
