"""The audit log: append-only, hash-chained, in the gallery's SQLite database.

Each entry records who (`cli:<user>`, `ha:<user>`, `token`, `service`), what (`action`, a
`subject` such as `person:12`, `details` as JSON) and when (UTC), never biometric data: details
that look like an embedding (a numpy array, bytes, a list of more than a few numbers) are
refused. An entry's `hash` is the SHA-256 of its canonical JSON — the sorted-key, compact JSON
object of `action`, `actor`, `details`, `prev_hash`, `subject`, `time` — and `prev_hash` is the
hash of the entry before it (64 zeros for the first), so the order lives in the chain itself;
`seq` only locates an entry. Any tool can recompute the chain from an export.

What `verify` detects: an entry whose content was changed (its hash no longer matches: "edited"),
an entry changed and re-hashed (the next entry's `prev_hash` points nowhere: "edited"), entries
deleted from the start or the middle ("removed"), entries moved ("reordered": an entry's
`prev_hash` names an entry that is elsewhere), and a deleted tail: the head row (`audit_head`,
updated in the same transaction as each append) remembers the last seq and hash ("removed").
What it cannot detect on its own: someone with write access to the file who rewrites the whole
chain from some point on *and* the head row (or restores an older copy of the database). For
that, record the head (`face-watchlist audit head`) somewhere else now and then — a printout, a
ticket, another machine — and check against it with `audit verify --anchor SEQ:HASH`. Triggers
refuse UPDATE and DELETE on the table, so the program itself cannot rewrite history by mistake.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from face_watchlist.errors import FaceWatchlistError

GENESIS = "0" * 64
ACTOR = re.compile(r"^(cli|ha|token|service)(:[^\s:][^\n]{0,199})?$")
ACTION = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")
MAX_NUMBERS = 8  # a list with more numbers than this looks like a vector: refused
MAX_ITEMS = 1000
MAX_STRING = 2000
MAX_DEPTH = 4

# the SQL of the audit tables; gallery.store appends it to its migrations
SCHEMA = """
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,          -- UTC, ISO 8601 with microseconds
    actor TEXT NOT NULL,         -- cli:<user>, ha:<user>, token, service
    action TEXT NOT NULL,        -- e.g. person.create, photo.enrol, import
    subject TEXT,                -- e.g. person:12, list:intruders
    details TEXT NOT NULL,       -- canonical JSON; never biometric data
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_subject ON audit (subject);
-- the last seq and hash, moved forward with each append: a deleted tail no longer matches it
CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head WHEN NEW.seq != OLD.seq + 1
    BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

Reason = Literal["edited", "removed", "reordered"]
Format = Literal["csv", "json"]
COLUMNS = ("seq", "time", "actor", "action", "subject", "details", "prev_hash", "hash")


class AuditError(FaceWatchlistError):
    """A bad audit entry (biometric data in details, an unknown actor...) or a bad request."""


class HasConnection(Protocol):
    db: sqlite3.Connection


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str
    actor: str
    action: str
    subject: str | None
    details: str  # canonical JSON text, exactly as hashed
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"details": json.loads(self.details)}


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int  # entries checked
    head_seq: int
    head_hash: str
    first_broken: int | None = None  # seq of the first entry whose link or content is wrong
    reason: Reason | None = None
    message: str = ""
    seconds: float = 0.0


def utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> str:
    """A user's ISO date or time (naive = UTC) in the log's own format, for range queries."""
    try:
        return utc_iso(datetime.fromisoformat(text))
    except ValueError:
        raise AuditError(
            f"{text!r} is not an ISO date or time (e.g. 2025-09-01 or 2025-09-01T08:00)"
        ) from None


def check_actor(actor: str) -> str:
    if not isinstance(actor, str) or not ACTOR.match(actor):
        raise AuditError(f"audit actor {actor!r} must be cli:<user>, ha:<user>, token or service")
    return actor


def _clean(value: object, where: str, depth: int = 0) -> object:
    """A plain JSON value, or an AuditError naming where biometric-looking data was found."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise AuditError(f"audit details {where}: a string longer than {MAX_STRING} characters")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditError(f"audit details {where}: {value} is not a finite number")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raise AuditError(f"audit details {where}: binary data is never written to the audit log")
    if hasattr(value, "__array__") or hasattr(value, "tolist"):
        shape = getattr(value, "shape", None)
        if shape == () and hasattr(value, "item"):  # a numpy scalar, e.g. a score
            return _clean(value.item(), where, depth)
        raise AuditError(
            f"audit details {where}: an array — embeddings and other biometric data never go in the "
            "audit log (record ids, counts and scores instead)"
        )
    return _clean_container(value, where, depth)


def _clean_container(value: object, where: str, depth: int) -> object:
    if depth >= MAX_DEPTH:
        raise AuditError(f"audit details {where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"audit details {where}: key {key!r} is not a string")
            out[key] = _clean(item, f"{where}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        if len(value) > MAX_ITEMS:
            raise AuditError(f"audit details {where}: more than {MAX_ITEMS} items")
        numbers = sum(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if numbers > MAX_NUMBERS:
            raise AuditError(
                f"audit details {where}: a list of {numbers} numbers looks like an embedding, which "
                "never goes in the audit log"
            )
        return [_clean(v, f"{where}[{n}]", depth + 1) for n, v in enumerate(value)]
    raise AuditError(f"audit details {where}: {type(value).__name__} is not a JSON value")


def canonical_details(details: Mapping[str, object] | None) -> str:
    cleaned = _clean(dict(details or {}), "details")
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(time_: str, actor: str, action: str, subject: str | None, details: str, prev_hash: str) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces); `details` is already
    canonical, so it is spliced in as it is rather than parsed again (verify stays fast)."""

    def s(v: str | None) -> str:
        return json.dumps(v, ensure_ascii=False)

    text = (
        f'{{"action":{s(action)},"actor":{s(actor)},"details":{details},"prev_hash":{s(prev_hash)},'
        f'"subject":{s(subject)},"time":{s(time_)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(*row)


class AuditLog:
    def __init__(
        self,
        store_or_connection: sqlite3.Connection | HasConnection,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db: sqlite3.Connection = (
            store_or_connection
            if isinstance(store_or_connection, sqlite3.Connection)
            else store_or_connection.db
        )
        self.clock = clock or (lambda: datetime.now(UTC))

    def append(
        self,
        actor: str,
        action: str,
        subject: str | None = None,
        details: Mapping[str, object] | None = None,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Append one entry; returns its seq. Inside the caller's transaction (`conn`, or this
        connection when a transaction is open) it commits — or rolls back — with the change it
        records; otherwise it is a transaction of its own."""
        check_actor(actor)
        if not ACTION.match(action):
            raise AuditError(f"audit action {action!r} must be dotted lower-case words (person.create)")
        if subject is not None and (not isinstance(subject, str) or len(subject) > 200):
            raise AuditError("audit subject must be a string of at most 200 characters")
        details_text = canonical_details(details)
        db = conn or self.db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN IMMEDIATE")
        try:
            head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
            moment = utc_iso(self.clock())
            digest = entry_hash(moment, actor, action, subject, details_text, prev)
            db.execute(
                "INSERT INTO audit (seq, time, actor, action, subject, details, prev_hash, hash)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (seq, moment, actor, action, subject, details_text, prev, digest),
            )
            db.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (seq, digest),
            )
        except BaseException:
            if own:
                db.execute("ROLLBACK")
            raise
        if own:
            db.execute("COMMIT")
        return seq

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def iter_entries(
        self,
        since: str | None = None,
        until: str | None = None,
        subject: str | None = None,
        action: str | None = None,
        batch: int = 10_000,
    ) -> Iterator[AuditEntry]:
        """Entries in order; `since`/`until` are ISO times (inclusive / exclusive)."""
        where, params = ["seq > ?"], [0]
        if since:
            where.append("time >= ?")
            params.append(parse_time(since))  # type: ignore[arg-type]
        if until:
            where.append("time < ?")
            params.append(parse_time(until))  # type: ignore[arg-type]
        if subject:
            where.append("subject = ?")
            params.append(subject)  # type: ignore[arg-type]
        if action:
            where.append("(action = ? OR action LIKE ?)")
            params += [action, f"{action}.%"]  # type: ignore[list-item]
        query = f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        while True:
            rows = self.db.execute(query, (*params, batch)).fetchall()
            yield from (_entry(tuple(r)) for r in rows)
            if len(rows) < batch:
                return
            params[0] = int(rows[-1][0])

    def newest(self, limit: int, since: str | None = None, until: str | None = None) -> list[AuditEntry]:
        """The last `limit` entries in the range, newest first (one indexed query: the audit page)."""
        where, params = ["seq > 0"], []
        if since:
            where.append("time >= ?")
            params.append(parse_time(since))
        if until:
            where.append("time < ?")
            params.append(parse_time(until))
        query = (
            f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        )
        return [_entry(tuple(r)) for r in self.db.execute(query, (*params, limit))]

    def entries(
        self,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        subject: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        for entry in self.iter_entries(since, until, subject, action):
            if limit is not None and len(found) >= limit:
                break
            found.append(entry)
        return found

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the chain from the first entry; report the first broken link and why."""
        started = time.perf_counter()
        head_seq, head_hash = self.head()
        expected, last_seq, checked = GENESIS, 0, 0

        def broken(seq: int, reason: Reason, message: str) -> VerifyReport:
            return VerifyReport(
                False, checked, head_seq, head_hash, seq, reason, message, time.perf_counter() - started
            )

        cursor = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq")
        while rows := cursor.fetchmany(20_000):
            for seq, time_, actor, action, subject, details, prev_hash, digest in rows:
                if entry_hash(time_, actor, action, subject, details, prev_hash) != digest:
                    return broken(
                        seq, "edited", f"entry {seq} does not match its hash: its content was changed"
                    )
                if prev_hash != expected:
                    return self._diagnose(seq, last_seq, prev_hash, broken)
                if seq != last_seq + 1:
                    return broken(seq, "edited", f"entry {seq} was renumbered (it follows entry {last_seq})")
                if anchor is not None and seq == anchor[0] and digest != anchor[1]:
                    return broken(seq, "edited", f"entry {seq} is not the one recorded in the anchor")
                expected, last_seq = digest, seq
                checked += 1
        if anchor is not None and anchor[0] > last_seq:
            return broken(
                last_seq + 1, "removed", f"the anchor names entry {anchor[0]}, the log ends at {last_seq}"
            )
        if head_seq > last_seq:
            return broken(
                last_seq + 1,
                "removed",
                f"entries {last_seq + 1}..{head_seq} are missing: the log was cut short "
                f"(the head says {head_seq})",
            )
        if head_seq != last_seq or head_hash != expected:
            return broken(
                last_seq,
                "edited",
                f"the last entry ({last_seq}) is not the one the head records ({head_seq})",
            )
        return VerifyReport(True, checked, head_seq, head_hash, seconds=time.perf_counter() - started)

    def _diagnose(
        self, seq: int, last_seq: int, prev_hash: str, broken: Callable[[int, Reason, str], VerifyReport]
    ) -> VerifyReport:
        if seq > last_seq + 1:
            return broken(seq, "removed", f"entries {last_seq + 1}..{seq - 1} are missing")
        elsewhere = self.db.execute("SELECT seq FROM audit WHERE hash = ?", (prev_hash,)).fetchone()
        if elsewhere is not None:
            return broken(
                seq,
                "reordered",
                f"entry {seq} belongs after entry {elsewhere[0]}, not after entry {last_seq}",
            )
        if last_seq == 0:
            return broken(
                seq, "removed", f"entry {seq} is first but names a predecessor: earlier entries are gone"
            )
        return broken(
            last_seq,
            "edited",
            f"entry {last_seq} was replaced (entry {seq} names a different predecessor): edited and "
            "re-hashed, or removed and the rest renumbered",
        )

    def export(
        self, path: Path, fmt: Format = "csv", since: str | None = None, until: str | None = None
    ) -> int:
        """Write entries as CSV (details as JSON text) or a JSON array; returns how many.
        Written beside the target and renamed, so a failed export leaves no half file."""
        if fmt not in ("csv", "json"):
            raise AuditError(f"unknown export format {fmt!r} (csv or json)")
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        count = 0
        try:
            with partial.open("w", encoding="utf-8", newline="") as out:
                if fmt == "csv":
                    writer = csv.writer(out)
                    writer.writerow(COLUMNS)
                    for entry in self.iter_entries(since, until):
                        writer.writerow([getattr(entry, c) for c in COLUMNS])
                        count += 1
                else:
                    out.write("[")
                    for entry in self.iter_entries(since, until):
                        out.write(
                            ("," if count else "") + "\n" + json.dumps(entry.as_dict(), ensure_ascii=False)
                        )
                        count += 1
                    out.write("\n]\n")
            os.replace(partial, path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise AuditError(f"{path}: cannot write the export ({err.strerror})") from None
        return count


def check_chain(entries: list[dict[str, Any]]) -> bool:
    """Recompute an exported chain (the JSON export's entries, in order) without the database;
    an export from `--since` starts mid-chain, so its first link is taken as given."""
    expected = entries[0]["prev_hash"] if entries else GENESIS
    for e in entries:
        details = json.dumps(e["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = entry_hash(e["time"], e["actor"], e["action"], e["subject"], details, e["prev_hash"])
        if e["prev_hash"] != expected or digest != e["hash"]:
            return False
        expected = digest
    return True
