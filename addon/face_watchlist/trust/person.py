"""A person's data, for a subject access request or a deletion: everything we hold about one
person, in one zip; or all of it gone (templates, photos, rejections, match evidence, index
entries), with an audit entry that says so and carries no face."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.records import Records
from face_watchlist.gallery.store import StoreError


def export_person(
    gallery: Gallery, records: Records, person_id: int, out: Path, actor: str
) -> dict[str, int]:
    """Write `out` (a zip): person.json (who, lists, photos, templates' metadata, matches, audit
    entries), the enrolment photos and the evidence of their matches, decrypted."""
    store = gallery.store
    person = store.get_person(person_id)
    photos = store.photos(person_id)
    templates = [
        dict(row)
        for row in store.db.execute(
            "SELECT id, photo_id, pack, face_px, sharpness, frontalness, det_score, method, created_at"
            " FROM templates WHERE person_id = ? ORDER BY id",
            (person_id,),
        )
    ]
    matches, offset = [], 0
    while True:
        page, total = records.query(person_id=person_id, limit=500, offset=offset)
        matches += page
        offset += len(page)
        if not page or offset >= total:
            break
    subjects = {f"person:{person_id}"} | {f"decision:{m.id}" for m in matches}
    audit = [e.as_dict() for e in store.audit.iter_entries() if e.subject in subjects]
    summary: dict[str, Any] = {
        "person": asdict(person),
        "lists": [asdict(w) for w in store.person_lists(person_id)],
        "photos": [
            {k: row[k] for k in ("id", "sha256", "source", "face_box", "added_at")}
            | {"file": f"photos/{row['path']}"}
            for row in photos
        ],
        "templates": templates,  # metadata only: the vectors are not meaningful to a person
        "matches": [asdict(m) for m in matches],
        "audit": audit,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    evidence = 0
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in photos:
            archive.writestr(f"photos/{row['path']}", store.read_photo(row["path"]))
        for match in matches:
            if match.has_evidence:
                for kind in ("face", "snapshot"):
                    try:
                        archive.writestr(f"evidence/{match.id}-{kind}.jpg", records.evidence(match.id, kind))
                        evidence += 1
                    except StoreError:
                        pass  # purged meanwhile
        archive.writestr("person.json", json.dumps(summary, indent=2, default=str))
    temporary.replace(out)
    counts = {
        "photos": len(photos),
        "templates": len(templates),
        "matches": len(matches),
        "evidence": evidence,
    }
    with store.transaction():
        store.record("person.export", f"person:{person_id}", {**counts, "file": out.name}, actor)
    return counts


def delete_person(gallery: Gallery, person_id: int, actor: str, reason: str = "deletion request") -> int:
    """Delete everything about a person; returns how many templates went (index included)."""
    removed = gallery.store.delete_person(person_id, actor=actor, reason=reason)
    gallery.removed(removed)
    gallery.save_index()
    return len(removed)
