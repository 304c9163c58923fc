"""The SQLite store: lists, people, memberships, enrolment photos, templates and rejections.

One file in the data directory (`gallery.sqlite3`), WAL mode, schema migrations from day one
(`PRAGMA user_version`). Each enrolment is one transaction, so a crash leaves either the whole
photo (file, row, template, membership) or nothing the store refers to. Enrolment photos are kept
under `photos/` beside it: they are the evidence of who is on a list, and the source for
re-embedding when the model pack changes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.trust import audit
from face_watchlist.trust.crypto import Cipher, decrypt_bytes, encrypt_bytes
from face_watchlist.trust.schedule import parse as parse_schedule

EVIDENCE_KINDS = ("face.jpg", "snapshot.jpg")
ListKind = Literal["watch", "known"]
AlertPolicy = Literal["review_first", "immediate"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE lists (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('watch', 'known')),
        threshold REAL,            -- raw cosine; NULL: the model pack's default
        margin REAL,               -- over the best other person; NULL: the pack's default
        policy TEXT NOT NULL CHECK (policy IN ('review_first', 'immediate')),
        created_at TEXT NOT NULL
    );
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        display_name TEXT NOT NULL,
        external_id TEXT UNIQUE,   -- e.g. a registry number
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
        added_at TEXT NOT NULL,
        PRIMARY KEY (person_id, list_id)
    );
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL UNIQUE,  -- the same photo twice is one photo
        path TEXT NOT NULL,           -- relative to the photos directory
        face_box TEXT NOT NULL,       -- x1,y1,x2,y2 of the enrolled face, to find it again
        source TEXT NOT NULL,         -- where it came from (file name, import)
        added_at TEXT NOT NULL
    );
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        pack TEXT NOT NULL,           -- embeddings of different packs never mix
        embedding BLOB NOT NULL,      -- float32, L2-normalised
        face_px REAL NOT NULL,
        sharpness REAL NOT NULL,
        frontalness REAL NOT NULL,
        det_score REAL NOT NULL,
        method TEXT NOT NULL,         -- 'enrol', 'import', 'reembed'
        created_at TEXT NOT NULL,
        UNIQUE (photo_id, pack)
    );
    CREATE INDEX templates_pack ON templates (pack, id);
    CREATE INDEX templates_person ON templates (person_id);
    CREATE TABLE rejections (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        pack TEXT NOT NULL,
        probe_embedding BLOB NOT NULL,  -- the face a reviewer said is not this person
        reviewer TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX rejections_person ON rejections (person_id, pack);
    -- bumped with every template change, so an index file knows whether it is stale
    CREATE TABLE index_generation (pack TEXT PRIMARY KEY, generation INTEGER NOT NULL);
    """,
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('instance_id', lower(hex(randomblob(16))));
    -- one row per published decision; biometric columns (probe, evidence) only for matches
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        camera TEXT NOT NULL,
        created_at REAL NOT NULL,      -- unix time
        result TEXT NOT NULL CHECK (result IN ('match', 'unknown', 'no_face')),
        attempts INTEGER NOT NULL,
        person_id INTEGER REFERENCES people(id) ON DELETE CASCADE,
        person_name TEXT,              -- as it was at the time
        list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
        list_name TEXT,
        score REAL,
        margin REAL,
        false_match_rate REAL,
        template_id INTEGER,           -- the enrolled template that matched
        review_state TEXT CHECK (review_state IN ('pending_review', 'alert', 'confirmed', 'rejected')),
        reviewer TEXT,
        reviewed_at REAL,
        pack TEXT,
        probe_embedding BLOB,          -- kept with the evidence, for a reviewer's rejection
        face_box TEXT,                 -- x1,y1,x2,y2 in the snapshot
        evidence TEXT                  -- relative path prefix under evidence/, NULL when purged
    );
    CREATE INDEX decisions_time ON decisions (created_at);
    CREATE INDEX decisions_camera ON decisions (camera, created_at);
    CREATE INDEX decisions_review ON decisions (review_state, created_at);
    CREATE INDEX decisions_person ON decisions (person_id);
    """,
    audit.SCHEMA,  # the hash-chained audit log (face_watchlist.trust.audit)
    # when an immediate list may alert at once (face_watchlist.trust.schedule); NULL: always
    "ALTER TABLE lists ADD COLUMN schedule TEXT",
)


class StoreError(FaceWatchlistError):
    """A request the store cannot honour (unknown list, person, conflicting name...)."""


@dataclass(frozen=True)
class WatchList:
    id: int
    name: str
    kind: ListKind
    threshold: float | None
    margin: float | None
    policy: AlertPolicy
    schedule: str | None = None  # outside it an immediate list's match waits for review


@dataclass(frozen=True)
class Person:
    id: int
    display_name: str
    external_id: str | None
    notes: str


@dataclass(frozen=True)
class Template:
    id: int
    person_id: int
    photo_id: int
    embedding: np.ndarray


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _raw(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class Store:
    """`actor` is who the changes of this handle are recorded for in the audit log (the CLI
    passes `cli:<os user>`); every mutating method also takes its own `actor`."""

    def __init__(
        self,
        data_dir: Path,
        actor: str = "service",
        clock: Callable[[], datetime] | None = None,
        cipher: Cipher | None = None,
    ) -> None:
        self.actor = audit.check_actor(actor)
        self.cipher = cipher  # set: templates, rejections and photo files are encrypted at rest
        self.data_dir = Path(data_dir)
        self.photos_dir = self.data_dir / "photos"
        self.evidence_dir = self.data_dir / "evidence"
        self.path = self.data_dir / "gallery.sqlite3"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._unlink_after_commit: list[Path] = []
        self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise StoreError(f"{self.path}: cannot open the gallery database ({err})") from None
        except StoreError:
            self.db.close()
            raise
        self.audit = audit.AuditLog(self.db, clock)

    def close(self) -> None:
        self.db.close()

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None

    def embedding_blob(self, vector: np.ndarray) -> bytes:
        return encrypt_bytes(_raw(vector), self.cipher, b"embedding")

    def embedding_vector(self, blob: bytes) -> np.ndarray:
        return np.frombuffer(decrypt_bytes(blob, self.cipher, b"embedding"), dtype=np.float32)

    def read_photo(self, relative: str) -> bytes:
        """An enrolment photo's bytes (decrypted when stored encrypted)."""
        return decrypt_bytes((self.photos_dir / relative).read_bytes(), self.cipher, b"photo")

    def record(
        self, action: str, subject: str | None, details: Mapping[str, object], actor: str | None = None
    ) -> int:
        """An audit entry, in the open transaction when there is one (so it commits with the change)."""
        return self.audit.append(actor or self.actor, action, subject, details, conn=self.db)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this program knows "
                f"({len(MIGRATIONS)}): upgrade face-watchlist"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            try:  # one transaction per migration, the version bump included
                self.db.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;")
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; nested calls join the outer one."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            self._unlink_after_commit.clear()
            raise
        self.db.execute("COMMIT")
        # files go only once the rows that named them are gone for good
        for path in self._unlink_after_commit:
            path.unlink(missing_ok=True)
        self._unlink_after_commit.clear()

    def unlink_after_commit(self, paths: list[Path]) -> None:
        """Delete these files once the current transaction has committed."""
        self._unlink_after_commit += paths

    # lists -------------------------------------------------------------------------------

    def create_list(
        self,
        name: str,
        kind: ListKind = "watch",
        threshold: float | None = None,
        margin: float | None = None,
        policy: AlertPolicy | None = None,
        *,
        schedule: str | None = None,
        actor: str | None = None,
    ) -> WatchList:
        policy = policy or ("review_first" if kind == "watch" else "immediate")
        if schedule is not None:
            parse_schedule(schedule)
        try:
            with self.transaction():
                cursor = self.db.execute(
                    "INSERT INTO lists (name, kind, threshold, margin, policy, schedule, created_at)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (name, kind, threshold, margin, policy, schedule, now()),
                )
                settings = {"name": name, "kind": kind, "threshold": threshold, "margin": margin}
                settings |= {"policy": policy, "schedule": schedule}
                self.record("list.create", f"list:{cursor.lastrowid}", settings, actor)
        except sqlite3.IntegrityError:
            raise StoreError(f"a list named {name!r} already exists") from None
        return self.get_list(name)

    def get_list(self, name: str) -> WatchList:
        row = self.db.execute("SELECT * FROM lists WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"no list named {name!r}")
        return _list(row)

    def ensure_list(self, name: str, *, actor: str | None = None) -> WatchList:
        """The list, created as a watch list with the pack's defaults when it does not exist yet."""
        row = self.db.execute("SELECT * FROM lists WHERE name = ?", (name,)).fetchone()
        return _list(row) if row else self.create_list(name, actor=actor)

    def lists(self) -> list[WatchList]:
        return [_list(r) for r in self.db.execute("SELECT * FROM lists ORDER BY name")]

    def update_list(self, name: str, /, *, actor: str | None = None, **changes: object) -> WatchList:
        allowed = {"name", "kind", "threshold", "margin", "policy", "schedule"}
        unknown = set(changes) - allowed
        if unknown:
            raise StoreError(f"unknown list settings: {', '.join(sorted(unknown))}")
        if isinstance(changes.get("schedule"), str):
            parse_schedule(str(changes["schedule"]))
        current = self.get_list(name)
        if changes:
            columns = ", ".join(f"{key} = ?" for key in changes)
            try:
                with self.transaction():
                    self.db.execute(
                        f"UPDATE lists SET {columns} WHERE id = ?", (*changes.values(), current.id)
                    )
                    self.record(
                        "list.update", f"list:{current.id}", {"name": name, "changes": changes}, actor
                    )
            except sqlite3.IntegrityError as err:
                raise StoreError(f"cannot update list {name!r}: {err}") from None
        return self.get_list(str(changes.get("name", name)))

    def delete_list(self, name: str, *, actor: str | None = None) -> list[int]:
        """Delete a list; people left on no list are deleted with their photos and templates.

        Returns the ids of the templates removed (for the index)."""
        current = self.get_list(name)
        with self.transaction():
            orphans = [
                r[0]
                for r in self.db.execute(
                    "SELECT person_id FROM memberships WHERE list_id = ? AND person_id NOT IN "
                    "(SELECT person_id FROM memberships WHERE list_id != ?)",
                    (current.id, current.id),
                )
            ]
            members = self.db.execute(
                "SELECT COUNT(*) FROM memberships WHERE list_id = ?", (current.id,)
            ).fetchone()[0]
            self.db.execute("DELETE FROM lists WHERE id = ?", (current.id,))
            self.record(
                "list.delete",
                f"list:{current.id}",
                {"name": name, "members": members, "people_deleted": len(orphans)},
                actor,
            )
            removed = self._delete_people(orphans, actor, "on no list any more")
        return removed

    # people ------------------------------------------------------------------------------

    def add_person(
        self, display_name: str, external_id: str | None = None, notes: str = "", *, actor: str | None = None
    ) -> Person:
        try:
            with self.transaction():
                cursor = self.db.execute(
                    "INSERT INTO people (display_name, external_id, notes, created_at) VALUES (?,?,?,?)",
                    (display_name, external_id, notes, now()),
                )
                self.record(
                    "person.create",
                    f"person:{cursor.lastrowid}",
                    {"display_name": display_name, "external_id": external_id},
                    actor,
                )
        except sqlite3.IntegrityError:
            raise StoreError(f"a person with external id {external_id!r} already exists") from None
        return self.get_person(int(cursor.lastrowid or 0))

    def get_person(self, person_id: int) -> Person:
        row = self.db.execute("SELECT * FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise StoreError(f"no person with id {person_id}")
        return _person(row)

    def find_person(
        self, *, external_id: str | None = None, display_name: str | None = None
    ) -> Person | None:
        """By external id when given, else by display name (the first, when several share it)."""
        if external_id is not None:
            row = self.db.execute("SELECT * FROM people WHERE external_id = ?", (external_id,)).fetchone()
        else:
            row = self.db.execute(
                "SELECT * FROM people WHERE display_name = ? ORDER BY id", (display_name,)
            ).fetchone()
        return _person(row) if row else None

    def people(self, list_name: str | None = None) -> list[Person]:
        if list_name is None:
            rows = self.db.execute("SELECT * FROM people ORDER BY display_name, id")
        else:
            rows = self.db.execute(
                "SELECT p.* FROM people p JOIN memberships m ON m.person_id = p.id "
                "WHERE m.list_id = ? ORDER BY p.display_name, p.id",
                (self.get_list(list_name).id,),
            )
        return [_person(r) for r in rows]

    def update_person(self, person_id: int, *, actor: str | None = None, **changes: object) -> Person:
        allowed = {"display_name", "external_id", "notes"}
        if set(changes) - allowed:
            raise StoreError(f"unknown person fields: {', '.join(sorted(set(changes) - allowed))}")
        self.get_person(person_id)
        if changes:
            columns = ", ".join(f"{key} = ?" for key in changes)
            try:
                with self.transaction():
                    self.db.execute(
                        f"UPDATE people SET {columns} WHERE id = ?", (*changes.values(), person_id)
                    )
                    self.record("person.update", f"person:{person_id}", {"changes": changes}, actor)
            except sqlite3.IntegrityError as err:
                raise StoreError(f"cannot update person {person_id}: {err}") from None
        return self.get_person(person_id)

    def person_lists(self, person_id: int) -> list[WatchList]:
        rows = self.db.execute(
            "SELECT l.* FROM lists l JOIN memberships m ON m.list_id = l.id"
            " WHERE m.person_id = ? ORDER BY l.name",
            (person_id,),
        )
        return [_list(r) for r in rows]

    def add_membership(self, person_id: int, list_id: int, *, actor: str | None = None) -> None:
        with self.transaction():
            self._add_membership(person_id, list_id, actor)

    def _add_membership(self, person_id: int, list_id: int, actor: str | None) -> None:
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO memberships (person_id, list_id, added_at) VALUES (?,?,?)",
            (person_id, list_id, now()),
        )
        if cursor.rowcount:
            self.record("membership.add", f"person:{person_id}", {"list_id": list_id}, actor)

    def remove_membership(self, person_id: int, list_id: int, *, actor: str | None = None) -> list[int]:
        """Take a person off a list; a person left on no list is deleted. Returns removed template ids."""
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM memberships WHERE person_id = ? AND list_id = ?", (person_id, list_id)
            )
            if cursor.rowcount:
                self.record("membership.remove", f"person:{person_id}", {"list_id": list_id}, actor)
            remaining = self.db.execute(
                "SELECT 1 FROM memberships WHERE person_id = ?", (person_id,)
            ).fetchone()
            return [] if remaining else self._delete_people([person_id], actor, "on no list any more")

    def delete_person(self, person_id: int, *, actor: str | None = None, reason: str = "") -> list[int]:
        """Delete a person with their photos and templates. Returns removed template ids."""
        self.get_person(person_id)
        with self.transaction():
            return self._delete_people([person_id], actor, reason or "deleted")

    def _delete_people(
        self, person_ids: list[int], actor: str | None = None, reason: str = "deleted"
    ) -> list[int]:
        removed: list[int] = []
        for person_id in person_ids:
            rows = self.db.execute(
                "SELECT id, pack FROM templates WHERE person_id = ?", (person_id,)
            ).fetchall()
            removed += [r["id"] for r in rows]
            for pack in {r["pack"] for r in rows}:
                self._bump(pack)
            paths = [
                r[0] for r in self.db.execute("SELECT path FROM photos WHERE person_id = ?", (person_id,))
            ]
            evidence = [
                r[0]
                for r in self.db.execute(
                    "SELECT evidence FROM decisions WHERE person_id = ? AND evidence IS NOT NULL",
                    (person_id,),
                )
            ]
            self.db.execute("DELETE FROM people WHERE id = ?", (person_id,))  # cascades to decisions
            self._unlink_after_commit += [self.photos_dir / path for path in paths]
            self._unlink_after_commit += [
                self.evidence_dir / f"{prefix}{kind}" for prefix in evidence for kind in EVIDENCE_KINDS
            ]
            self.record(
                "person.delete",
                f"person:{person_id}",
                {"reason": reason, "photos": len(paths), "templates": len(rows), "matches": len(evidence)},
                actor,
            )
        return removed

    # photos and templates ----------------------------------------------------------------

    def photo_by_hash(self, sha256: str) -> tuple[int, int] | None:
        """(photo id, person id) of an already enrolled photo."""
        row = self.db.execute("SELECT id, person_id FROM photos WHERE sha256 = ?", (sha256,)).fetchone()
        return (row[0], row[1]) if row else None

    def enrol(
        self,
        person_id: int,
        list_id: int,
        photo: bytes,
        sha256: str,
        suffix: str,
        face_box: tuple[float, float, float, float],
        source: str,
        pack: str,
        embedding: np.ndarray,
        quality: tuple[float, float, float, float],
        method: str,
        *,
        actor: str | None = None,
    ) -> int:
        """Store one enrolment photo with its template and the membership, atomically.

        The photo file is written first under a temporary name and renamed into place inside the
        transaction: a crash leaves at worst an unreferenced file, which `sweep_photos` removes.
        Returns the new template id.
        """
        relative = f"{person_id}/{sha256}{suffix}"
        target = self.photos_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(encrypt_bytes(photo, self.cipher, b"photo"))
        try:
            with self.transaction():
                cursor = self.db.execute(
                    "INSERT INTO photos (person_id, sha256, path, face_box, source, added_at)"
                    " VALUES (?,?,?,?,?,?)",
                    (person_id, sha256, relative, ",".join(f"{v:.1f}" for v in face_box), source, now()),
                )
                photo_id = int(cursor.lastrowid or 0)
                template_id = self._insert_template(person_id, photo_id, pack, embedding, quality, method)
                self._add_membership(person_id, list_id, actor)
                self.record(
                    "photo.enrol",
                    f"person:{person_id}",
                    {
                        "photo_id": photo_id,
                        "photo_sha256": sha256,
                        "template_id": template_id,
                        "pack": pack,
                        "source": source,
                        "method": method,
                        "list_id": list_id,
                    },
                    actor,
                )
                temporary.replace(target)
        except sqlite3.IntegrityError as err:
            temporary.unlink(missing_ok=True)
            if "photos.sha256" in str(err):
                raise StoreError("this photo is already enrolled") from None
            raise StoreError(f"cannot enrol: the person or list is gone ({err})") from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return template_id

    def add_template(
        self,
        person_id: int,
        photo_id: int,
        pack: str,
        embedding: np.ndarray,
        quality: tuple[float, float, float, float],
        method: str,
        *,
        actor: str | None = None,
    ) -> tuple[int, list[int]]:
        """A template for an already kept photo (re-embedding with another pack).

        Returns the new template id and the ids of the templates it replaced (for the index)."""
        with self.transaction():
            old = [r[0] for r in self.db.execute(
                "SELECT id FROM templates WHERE photo_id = ? AND pack = ?", (photo_id, pack)
            )]  # fmt: skip
            self.db.execute("DELETE FROM templates WHERE photo_id = ? AND pack = ?", (photo_id, pack))
            template_id = self._insert_template(person_id, photo_id, pack, embedding, quality, method)
            self.record(
                "template.add",
                f"person:{person_id}",
                {
                    "photo_id": photo_id,
                    "pack": pack,
                    "template_id": template_id,
                    "replaced": old,
                    "method": method,
                },
                actor,
            )
            return template_id, old

    def _insert_template(
        self,
        person_id: int,
        photo_id: int,
        pack: str,
        embedding: np.ndarray,
        quality: tuple[float, float, float, float],
        method: str,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO templates (person_id, photo_id, pack, embedding, face_px, sharpness, frontalness,"
            " det_score, method, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (person_id, photo_id, pack, self.embedding_blob(embedding), *quality, method, now()),
        )
        self._bump(pack)
        return int(cursor.lastrowid or 0)

    def photos(self, person_id: int | None = None) -> list[sqlite3.Row]:
        if person_id is None:
            return list(self.db.execute("SELECT * FROM photos ORDER BY id"))
        return list(self.db.execute("SELECT * FROM photos WHERE person_id = ? ORDER BY id", (person_id,)))

    def templates(self, pack: str, person_id: int | None = None) -> list[Template]:
        query = "SELECT id, person_id, photo_id, embedding FROM templates WHERE pack = ?"
        params: tuple[object, ...] = (pack,)
        if person_id is not None:
            query += " AND person_id = ?"
            params += (person_id,)
        return [
            Template(r[0], r[1], r[2], self.embedding_vector(r[3]))
            for r in self.db.execute(query + " ORDER BY id", params)
        ]

    def template_batches(self, pack: str, size: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, for rebuilding an index without one giant list."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT id, embedding FROM templates WHERE pack = ? AND id > ? ORDER BY id LIMIT ?",
                (pack, last, size),
            ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([self.embedding_vector(r[1]) for r in rows])
            last = int(ids[-1])

    def template_owners(self, template_ids: list[int]) -> dict[int, int]:
        """template id -> person id, for search results."""
        owners: dict[int, int] = {}
        for start in range(0, len(template_ids), 500):
            chunk = template_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            owners.update(
                self.db.execute(f"SELECT id, person_id FROM templates WHERE id IN ({marks})", chunk)
            )
        return owners

    def memberships(self, person_ids: list[int]) -> dict[int, list[WatchList]]:
        found: dict[int, list[WatchList]] = {p: [] for p in person_ids}
        for start in range(0, len(person_ids), 500):
            chunk = person_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT m.person_id AS pid, l.* FROM memberships m JOIN lists l ON l.id = m.list_id "
                f"WHERE m.person_id IN ({marks})",
                chunk,
            ):
                found[row["pid"]].append(_list(row))
        return found

    def generation(self, pack: str) -> int:
        row = self.db.execute("SELECT generation FROM index_generation WHERE pack = ?", (pack,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, pack: str) -> None:
        self.db.execute(
            "INSERT INTO index_generation (pack, generation) VALUES (?, 1) "
            "ON CONFLICT (pack) DO UPDATE SET generation = generation + 1",
            (pack,),
        )

    def sweep_photos(self, grace_s: float = 3600.0) -> int:
        """Delete photo files no row refers to, left by a crash mid-enrolment. Returns how many.

        Files younger than `grace_s` are spared: they may belong to an enrolment in flight in
        another process (written, or renamed in but not yet committed)."""
        return sweep_unnamed(
            self.photos_dir, {r[0] for r in self.db.execute("SELECT path FROM photos")}, grace_s
        )

    # rejections --------------------------------------------------------------------------

    def add_rejection(
        self,
        person_id: int,
        pack: str,
        probe: np.ndarray,
        reviewer: str,
        reason: str = "",
        *,
        actor: str | None = None,
    ) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO rejections (person_id, pack, probe_embedding, reviewer, reason, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (person_id, pack, self.embedding_blob(probe), reviewer, reason, now()),
            )
            # the probe embedding stays in its table: the audit log records who rejected what
            self.record(
                "rejection.add",
                f"person:{person_id}",
                {"rejection_id": cursor.lastrowid, "pack": pack, "reviewer": reviewer, "reason": reason},
                actor,
            )
        return int(cursor.lastrowid or 0)

    def rejections(self, person_ids: list[int], pack: str) -> dict[int, list[np.ndarray]]:
        found: dict[int, list[np.ndarray]] = {}
        for start in range(0, len(person_ids), 500):
            chunk = person_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT person_id, probe_embedding FROM rejections"
                f" WHERE pack = ? AND person_id IN ({marks})",
                (pack, *chunk),
            ):
                found.setdefault(row[0], []).append(self.embedding_vector(row[1]))
        return found

    def people_per_list(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT l.name, COUNT(m.person_id) FROM lists l LEFT JOIN memberships m ON m.list_id = l.id"
            " GROUP BY l.id ORDER BY l.name"
        )
        return {name: int(count) for name, count in rows}

    def instance_id(self) -> str:
        """Stable per data directory: how Home Assistant tells two services apart."""
        return str(self.db.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0])

    def counts(self) -> dict[str, int]:
        tables = ("lists", "people", "photos", "templates", "rejections", "decisions")
        return {t: int(self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}


def sweep_unnamed(root: Path, known: set[str], grace_s: float) -> int:
    """Delete the files under `root` whose relative path is not `known` and that are older than
    `grace_s` (younger ones may belong to a write in flight in another process)."""
    if not root.exists():
        return 0
    cutoff, removed = time.time() - grace_s, 0
    for path in root.rglob("*"):
        if not path.is_file() or path.relative_to(root).as_posix() in known:
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _list(row: sqlite3.Row) -> WatchList:
    return WatchList(
        row["id"], row["name"], row["kind"], row["threshold"], row["margin"], row["policy"], row["schedule"]
    )


def _person(row: sqlite3.Row) -> Person:
    return Person(row["id"], row["display_name"], row["external_id"], row["notes"])
