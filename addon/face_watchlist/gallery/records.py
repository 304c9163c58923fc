"""Decision records: one row per published decision, with evidence for matches only.

Matches keep what a reviewer needs (the probe embedding, a face crop and the snapshot it came
from) until the review is done and the retention period is over; `unknown` and `no_face` rows
hold only the camera, the time and the result, never a face. A review either confirms a match or
rejects it, and a rejection becomes a gallery rejection so the same face stops matching that
person.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from face_watchlist.errors import ImageError
from face_watchlist.faces.images import decode_image, encode_jpeg
from face_watchlist.gallery.store import EVIDENCE_KINDS, Store, StoreError, sweep_unnamed
from face_watchlist.outputs.messages import ReviewState
from face_watchlist.trust.crypto import decrypt_bytes, encrypt_bytes

ReviewAction = Literal["confirm", "reject"]
EvidenceKind = Literal["face", "snapshot"]
CROP_MARGIN = 0.6  # of the face's size on each side: enough context for a human to judge
CROP_MAX_PX = 320


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    event_id: str
    camera: str
    time: float
    result: str
    attempts: int
    person_id: int | None
    person: str | None
    list_id: int | None
    list: str | None
    score: float | None
    margin: float | None
    false_match_rate: float | None
    template_id: int | None
    review_state: ReviewState | None
    reviewer: str | None
    reviewed_at: float | None
    face_box: tuple[float, float, float, float] | None
    has_evidence: bool


@dataclass(frozen=True)
class Evidence:
    """A matched face as captured, held in memory until the match is recorded."""

    snapshot: bytes
    box: tuple[float, float, float, float]
    probe: np.ndarray
    pack: str
    face_jpeg: bytes | None = None  # the crop, when already made (off the event loop)


def face_crop(snapshot: bytes, box: tuple[float, float, float, float], max_pixels: int) -> bytes:
    """A loose JPEG crop around the face, at most CROP_MAX_PX on its long side."""
    return crop_jpeg(decode_image(snapshot, max_pixels), box)


def crop_jpeg(image: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    x1, y1, x2, y2 = box
    pad = CROP_MARGIN * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    left, top = max(int(x1 - pad), 0), max(int(y1 - pad), 0)
    right, bottom = min(int(x2 + pad), w), min(int(y2 + pad), h)
    if right <= left or bottom <= top:
        raise ImageError("the face box lies outside the picture")
    crop = image[top:bottom, left:right]
    scale = CROP_MAX_PX / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return encode_jpeg(crop)


def boxed_snapshot(snapshot: bytes, box: tuple[float, float, float, float] | None, max_pixels: int) -> bytes:
    image = decode_image(snapshot, max_pixels).copy()
    if box is not None:
        thickness = max(2, round(max(image.shape[:2]) / 300))
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 255), thickness)
    return encode_jpeg(image)


class Records:
    def __init__(self, store: Store, max_pixels: int) -> None:
        self.store, self.max_pixels = store, max_pixels
        self.sweep_evidence()  # what a crash left: evidence of no decision must not stay on disk

    def sweep_evidence(self, grace_s: float = 3600.0) -> int:
        """Delete evidence files no decision names (a kill between a purge's commit and its
        unlinks, or mid-write). Files younger than `grace_s` may belong to a write in flight in
        another process and are spared. Returns how many were deleted."""
        prefixes = {
            r[0] for r in self.store.db.execute("SELECT evidence FROM decisions WHERE evidence IS NOT NULL")
        }
        known = {f"{prefix}{kind}" for prefix in prefixes for kind in EVIDENCE_KINDS}
        return sweep_unnamed(self.store.evidence_dir, known, grace_s)

    def add(
        self,
        *,
        event_id: str,
        camera: str,
        result: str,
        attempts: int,
        created_at: float | None = None,
        person_id: int | None = None,
        list_id: int | None = None,
        score: float | None = None,
        margin: float | None = None,
        false_match_rate: float | None = None,
        template_id: int | None = None,
        review_state: ReviewState | None = None,
        evidence: Evidence | None = None,
    ) -> DecisionRecord:
        """Record a decision; `evidence` is written only for a match (files first, then the row)."""
        if result != "match" and (evidence is not None or person_id is not None):
            raise ValueError("only a match may carry a person or evidence")
        db = self.store.db
        person = list_name = None
        if person_id is not None:
            person = self.store.get_person(person_id).display_name
        if list_id is not None:
            row = db.execute("SELECT name FROM lists WHERE id = ?", (list_id,)).fetchone()
            list_name = row[0] if row else None
        files: list[tuple[str, bytes]] = []
        if evidence is not None:
            files = [
                (
                    "face.jpg",
                    evidence.face_jpeg or face_crop(evidence.snapshot, evidence.box, self.max_pixels),
                ),
                ("snapshot.jpg", evidence.snapshot),
            ]
        with self.store.transaction():
            cursor = db.execute(
                "INSERT INTO decisions (event_id, camera, created_at, result, attempts, person_id,"
                " person_name, list_id, list_name, score, margin, false_match_rate, template_id,"
                " review_state, pack, probe_embedding, face_box) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    event_id,
                    camera,
                    created_at if created_at is not None else time.time(),
                    result,
                    attempts,
                    person_id,
                    person,
                    list_id,
                    list_name,
                    score,
                    margin,
                    false_match_rate,
                    template_id,
                    review_state,
                    evidence.pack if evidence else None,
                    self.store.embedding_blob(evidence.probe) if evidence else None,
                    ",".join(f"{v:.1f}" for v in evidence.box) if evidence else None,
                ),
            )
            decision_id = int(cursor.lastrowid or 0)
            # who was seen where, never the face: the audit log outlives the evidence
            details: dict[str, object] = {"event_id": event_id, "camera": camera, "result": result}
            if person_id is not None:
                details |= {"person_id": person_id, "list": list_name, "score": score, "review": review_state}
            self.store.record("decision", f"decision:{decision_id}", details, "service")
            if files:
                prefix = f"{decision_id // 1000}/{decision_id}-"
                self._write(prefix, files)
                db.execute("UPDATE decisions SET evidence = ? WHERE id = ?", (prefix, decision_id))
        return self.get(decision_id)

    def _write(self, prefix: str, files: list[tuple[str, bytes]]) -> None:
        """Inside the transaction: a failed write rolls the row back; a crash leaves only files
        that no row names (removed by `sweep_evidence`)."""
        written: list[Path] = []
        try:
            for kind, data in files:
                path = self.store.evidence_dir / f"{prefix}{kind}"
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{path.name}.tmp")
                written.append(temporary)
                temporary.write_bytes(encrypt_bytes(data, self.store.cipher, b"evidence"))
                temporary.replace(path)
                written[-1] = path
        except OSError:  # e.g. a full disk: no half-written file, no crop without its row
            for path in written:
                path.unlink(missing_ok=True)
            raise

    def get(self, decision_id: int) -> DecisionRecord:
        row = self.store.db.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        if row is None:
            raise StoreError(f"no decision {decision_id}")
        return _record(row)

    def query(
        self,
        *,
        camera: str | None = None,
        list_name: str | None = None,
        status: ReviewState | None = None,
        result: str | None = None,
        person_id: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[DecisionRecord], int]:
        """Newest first, with the total for paging."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("camera", camera),
            ("list_name", list_name),
            ("review_state", status),
            ("result", result),
            ("person_id", person_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at < ?")
            params.append(until)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        db = self.store.db
        total = int(db.execute(f"SELECT COUNT(*) FROM decisions{clause}", params).fetchone()[0])
        rows = db.execute(
            f"SELECT * FROM decisions{clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, max(0, min(limit, 500)), max(0, offset)],
        )
        return [_record(r) for r in rows], total

    def evidence(self, decision_id: int, kind: EvidenceKind) -> bytes:
        """The face crop, or the snapshot with the face boxed."""
        record = self.get(decision_id)
        row = self.store.db.execute("SELECT evidence FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        if row[0] is None:
            raise StoreError(f"decision {decision_id} has no evidence (not a match, or purged)")
        path = self.store.evidence_dir / f"{row[0]}{kind}.jpg"
        try:
            data = decrypt_bytes(path.read_bytes(), self.store.cipher, b"evidence")
        except FileNotFoundError:
            raise StoreError(f"the evidence file of decision {decision_id} is missing") from None
        return boxed_snapshot(data, record.face_box, self.max_pixels) if kind == "snapshot" else data

    def probe(self, decision_id: int) -> tuple[np.ndarray, str] | None:
        row = self.store.db.execute(
            "SELECT probe_embedding, pack FROM decisions WHERE id = ?", (decision_id,)
        ).fetchone()
        return (self.store.embedding_vector(row[0]), row[1]) if row and row[0] is not None else None

    def review(
        self, decision_id: int, action: ReviewAction, reviewer: str, reason: str = ""
    ) -> DecisionRecord:
        """Confirm or reject a match; a rejection teaches the gallery not to match that face again."""
        record = self.get(decision_id)
        if record.result != "match" or record.person_id is None:
            raise StoreError(f"decision {decision_id} is not a match: nothing to review")
        if record.review_state in ("confirmed", "rejected"):
            raise StoreError(f"decision {decision_id} was already {record.review_state} by {record.reviewer}")
        state: ReviewState = "confirmed" if action == "confirm" else "rejected"
        probe = self.probe(decision_id)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE decisions SET review_state = ?, reviewer = ?, reviewed_at = ? WHERE id = ?",
                (state, reviewer, time.time(), decision_id),
            )
            self.store.record(
                f"review.{action}",
                f"decision:{decision_id}",
                {"person_id": record.person_id, "camera": record.camera, "reason": reason},
                reviewer,
            )
            if action == "reject" and probe is not None:
                self.store.add_rejection(
                    record.person_id,
                    probe[1],
                    probe[0],
                    reviewer,
                    reason or f"decision {decision_id}",
                    actor=reviewer,
                )
        return self.get(decision_id)

    def pending_count(self) -> int:
        return int(
            self.store.db.execute(
                "SELECT COUNT(*) FROM decisions WHERE review_state = 'pending_review'"
            ).fetchone()[0]
        )

    def matches_since(self, since: float) -> int:
        return int(
            self.store.db.execute(
                "SELECT COUNT(*) FROM decisions WHERE result = 'match' AND created_at >= ?", (since,)
            ).fetchone()[0]
        )

    def purge_evidence(self, reviewed_before: float, pending_before: float, *, dry_run: bool = False) -> int:
        """Drop the probe and evidence files of matches: reviewed (or immediate-alert) ones
        recorded before `reviewed_before`, still pending ones before `pending_before` (a reviewer
        needs the evidence, but not for ever). Returns how many matches lost their evidence."""
        db = self.store.db
        rows = db.execute(
            "SELECT id, evidence FROM decisions WHERE (evidence IS NOT NULL OR probe_embedding IS NOT NULL)"
            " AND ((review_state IS NOT 'pending_review' AND created_at < ?)"
            " OR (review_state = 'pending_review' AND created_at < ?))",
            (reviewed_before, pending_before),
        ).fetchall()
        if dry_run or not rows:
            return len(rows)
        with self.store.transaction():
            for row in rows:
                db.execute(
                    "UPDATE decisions SET evidence = NULL, probe_embedding = NULL WHERE id = ?", (row[0],)
                )
                if row[1] is not None:
                    self.store.unlink_after_commit(
                        [self.store.evidence_dir / f"{row[1]}{kind}" for kind in EVIDENCE_KINDS]
                    )
        return len(rows)

    def purge_decisions(self, before: float, *, dry_run: bool = False) -> int:
        """Delete decision rows (no biometrics left in them once evidence is purged)."""
        db = self.store.db
        where = "created_at < ? AND evidence IS NULL AND probe_embedding IS NULL"
        count = int(db.execute(f"SELECT COUNT(*) FROM decisions WHERE {where}", (before,)).fetchone()[0])
        if not dry_run and count:
            with self.store.transaction():
                db.execute(f"DELETE FROM decisions WHERE {where}", (before,))
        return count


def _record(row: sqlite3.Row) -> DecisionRecord:
    box = tuple(float(v) for v in row["face_box"].split(",")) if row["face_box"] else None
    return DecisionRecord(
        id=row["id"],
        event_id=row["event_id"],
        camera=row["camera"],
        time=row["created_at"],
        result=row["result"],
        attempts=row["attempts"],
        person_id=row["person_id"],
        person=row["person_name"],
        list_id=row["list_id"],
        list=row["list_name"],
        score=row["score"],
        margin=row["margin"],
        false_match_rate=row["false_match_rate"],
        template_id=row["template_id"],
        review_state=row["review_state"],
        reviewer=row["reviewer"],
        reviewed_at=row["reviewed_at"],
        face_box=(box[0], box[1], box[2], box[3]) if box and len(box) == 4 else None,
        has_evidence=row["evidence"] is not None,
    )
