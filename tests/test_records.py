"""Decision records: bare rows for non-matches, evidence for matches, reviews, purges."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from face_watchlist.faces.images import decode_image
from face_watchlist.gallery.records import Evidence, Records
from face_watchlist.gallery.store import Store, StoreError

PHOTO = Path(__file__).parent / "data" / "faces" / "face_recognition_knn" / "probe" / "obama1.jpg"
BOX = (100.0, 80.0, 220.0, 230.0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path)
    yield s  # type: ignore[misc]
    s.close()


def _probe(seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def _match(store: Store, records: Records, when: float = 1000.0) -> tuple[int, int]:
    person = store.add_person("Jane Doe", "R-1")
    watch = store.ensure_list("registry")
    store.add_membership(person.id, watch.id)
    record = records.add(
        event_id="e1",
        camera="front door",
        result="match",
        attempts=2,
        created_at=when,
        person_id=person.id,
        list_id=watch.id,
        score=0.6,
        margin=0.3,
        false_match_rate=1e-5,
        review_state="pending_review",
        evidence=Evidence(PHOTO.read_bytes(), BOX, _probe(), "opencv-zoo"),
    )
    return record.id, person.id


def test_non_matches_are_bare_rows(store: Store) -> None:
    records = Records(store, 10**8)
    record = records.add(event_id="e0", camera="gate", result="unknown", attempts=3, score=0.2)
    assert (record.person_id, record.has_evidence, record.review_state) == (None, False, None)
    row = store.db.execute("SELECT probe_embedding, evidence, face_box FROM decisions").fetchone()
    assert tuple(row) == (None, None, None)
    assert not store.evidence_dir.exists()
    with pytest.raises(ValueError, match="only a match"):
        records.add(event_id="e0", camera="gate", result="unknown", attempts=1, person_id=1)
    with pytest.raises(StoreError, match="no evidence"):
        records.evidence(record.id, "face")


def test_match_evidence_crop_and_boxed_snapshot(store: Store) -> None:
    records = Records(store, 10**8)
    decision_id, _ = _match(store, records)
    record = records.get(decision_id)
    assert (record.person, record.list, record.face_box) == ("Jane Doe", "registry", BOX)
    face = decode_image(records.evidence(decision_id, "face"))
    assert max(face.shape[:2]) <= 320
    assert face.shape[0] > BOX[3] - BOX[1]  # a loose crop, with context
    original = decode_image(PHOTO.read_bytes())
    boxed = decode_image(records.evidence(decision_id, "snapshot"))
    assert boxed.shape == original.shape
    diff = cv2.absdiff(boxed, original).max(axis=2)
    assert diff[int(BOX[1]), int(BOX[0]) : int(BOX[2])].mean() > 60  # the box's top edge is drawn
    assert diff[5:40, 5:40].mean() < 10  # the rest is the photo


def test_query_filters_and_pages(store: Store) -> None:
    records = Records(store, 10**8)
    for i in range(30):
        camera = "gate" if i % 2 else "hall"
        records.add(event_id=f"u{i}", camera=camera, result="unknown", attempts=1, created_at=float(i))
    items, total = records.query(camera="gate", limit=5, offset=5)
    assert total == 15
    assert [r.event_id for r in items] == ["u19", "u17", "u15", "u13", "u11"]
    items, total = records.query(since=10.0, until=20.0)
    assert total == 10
    assert records.query(status="pending_review") == ([], 0)


def test_reject_feeds_the_gallery_and_review_happens_once(store: Store) -> None:
    records = Records(store, 10**8)
    decision_id, person_id = _match(store, records)
    assert records.pending_count() == 1
    record = records.review(decision_id, "reject", "ha:frontdesk")
    assert (record.review_state, record.reviewer) == ("rejected", "ha:frontdesk")
    assert records.pending_count() == 0
    rejected = store.rejections([person_id], "opencv-zoo")[person_id]
    assert np.allclose(rejected[0], _probe())
    with pytest.raises(StoreError, match="already rejected"):
        records.review(decision_id, "confirm", "token")


def test_purge_keeps_pending_evidence_longer_and_then_rows(store: Store) -> None:
    records = Records(store, 10**8)
    decision_id, _ = _match(store, records, when=1000.0)
    assert records.purge_evidence(2000.0, 500.0) == 0  # still waiting for a reviewer
    assert records.purge_evidence(2000.0, 1500.0, dry_run=True) == 1  # waited too long
    records.review(decision_id, "confirm", "token")
    assert records.purge_evidence(2000.0, 500.0, dry_run=True) == 1
    assert records.get(decision_id).has_evidence
    assert records.purge_evidence(2000.0, 500.0) == 1
    assert not records.get(decision_id).has_evidence
    assert not any(p.is_file() for p in store.evidence_dir.rglob("*"))
    assert records.probe(decision_id) is None
    assert records.purge_decisions(before=2000.0) == 1
    assert records.query() == ([], 0)


def test_sweep_removes_only_old_unnamed_evidence(store: Store) -> None:
    records = Records(store, 10**8)
    decision_id, _ = _match(store, records)
    stray = store.evidence_dir / "9" / "9999-face.jpg"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left by a crash")
    assert records.sweep_evidence() == 0  # young: maybe a decision being recorded
    assert records.sweep_evidence(grace_s=-1) == 1
    assert not stray.exists()
    assert records.get(decision_id).has_evidence
    assert records.evidence(decision_id, "face")


def test_deleting_a_person_deletes_their_evidence(store: Store) -> None:
    records = Records(store, 10**8)
    decision_id, person_id = _match(store, records)
    assert any(p.is_file() for p in store.evidence_dir.rglob("*"))
    store.delete_person(person_id)
    assert not any(p.is_file() for p in store.evidence_dir.rglob("*"))
    with pytest.raises(StoreError):
        records.get(decision_id)


def test_instance_id_is_stable(tmp_path: Path) -> None:
    first = Store(tmp_path)
    instance = first.instance_id()
    first.close()
    again = Store(tmp_path)
    assert again.instance_id() == instance
    assert len(instance) == 32
    again.close()
