"""Storage faults on real SQLite and a real file system: the disk fills up while evidence is being
saved (a small tmpfs), another process holds the database locked, and a purge is killed with
SIGKILL. Each time: a clear error, nothing half-written, and a consistent store after restart
with no manual step. (The index deleted or corrupt: test_index.py; kill -9 during an import:
test_enroll.py; broker restarts and Frigate flapping: test_service_faults.py.)"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from face_watchlist.demo import free_port
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import publish_lifecycle
from face_watchlist.gallery.records import Evidence, Records
from face_watchlist.gallery.store import EVIDENCE_KINDS, Store
from service_rig import rig
from test_service_faults import BOX, OBAMA, clients, eventually
from web_rig import AUTH, TOKEN

MAX_PIXELS = 40_000_000


# --- a small disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, str], Path]]:
    """Mounts a tmpfs of the given size at a path (root only: the suite runs as root in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            if subprocess.run(["umount", str(path)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> Path:
    """A filler file taking all but `leave` bytes of the file system holding `path`."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    filler = path / "filler"
    with filler.open("wb") as out:
        remaining = max(0, free - leave)
        while remaining:
            chunk = min(remaining, 1 << 20)
            out.write(bytes(chunk))
            remaining -= chunk
    return filler


def noisy_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A JPEG that does not compress: random pixels (about 3 bytes a pixel at quality 95)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())


def person_and_list(store: Store) -> tuple[int, int]:
    watch_list = store.create_list("visitors")
    person = store.add_person("Jane Doe", "R-1")
    store.add_membership(person.id, watch_list.id)
    return person.id, watch_list.id


def evidence(snapshot: bytes) -> Evidence:
    probe = np.ones(128, np.float32) / np.sqrt(128)
    return Evidence(snapshot, (100.0, 100.0, 300.0, 300.0), probe, "opencv-zoo")


def add_match(records: Records, person_id: int, list_id: int, snapshot: bytes, event_id: str) -> int:
    record = records.add(
        event_id=event_id,
        camera="front_door",
        result="match",
        attempts=1,
        person_id=person_id,
        list_id=list_id,
        score=0.7,
        margin=0.2,
        false_match_rate=1e-6,
        review_state="pending_review",
        evidence=evidence(snapshot),
    )
    return record.id


def evidence_files(store: Store) -> set[str]:
    root = store.evidence_dir
    return (
        {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    )


def integrity(store: Store) -> str:
    return str(store.db.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_while_saving_evidence_leaves_nothing_half_written(
    tmp_path: Path, small_disk: Callable[[Path, str], Path]
) -> None:
    data = small_disk(tmp_path / "data", "8m")
    store = Store(data)
    try:
        records = Records(store, MAX_PIXELS)
        person_id, list_id = person_and_list(store)
        first = add_match(records, person_id, list_id, noisy_jpeg(320, 240), "1.0-fits")
        kept = evidence_files(store)
        assert len(kept) == 2
        filler = fill(data, leave=256 << 10)  # room for the database, not for a 1 MB snapshot
        big = noisy_jpeg(1200, 900, seed=1)
        assert len(big) > 1 << 20
        with pytest.raises((OSError, sqlite3.OperationalError)) as full:
            add_match(records, person_id, list_id, big, "2.0-full")
        if isinstance(full.value, OSError):
            assert full.value.errno == errno.ENOSPC
        # nothing of the failed decision: no row, no file, not even a half-written temporary one
        assert [r.id for r in records.query()[0]] == [first]
        assert evidence_files(store) == kept
        assert integrity(store) == "ok"
        # room again: the same decision goes in whole, with its evidence readable
        filler.unlink()
        second = add_match(records, person_id, list_id, big, "2.0-full")
        snapshot = records.evidence(second, "snapshot")
        assert cv2.imdecode(np.frombuffer(snapshot, np.uint8), 1).shape == (900, 1200, 3)
        assert len(evidence_files(store)) == 4
        assert integrity(store) == "ok"
    finally:
        store.close()


async def test_the_service_publishes_and_carries_on_when_the_disk_is_full(
    tmp_path: Path,
    broker: int,
    pipeline: FacePipeline,
    model_dir: Path,
    small_disk: Callable[[Path, str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = small_disk(tmp_path / "data", "48m")  # the rig enrols its people there first
    async with rig(tmp_path, broker, pipeline, model_dir) as r, clients(broker) as (frigate, watcher):
        filler = fill(data, leave=64 << 10)
        event = r.sim.add_event("1.0-full", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", event, updates=0)
        decision = (await watcher.settled({"1.0-full"}))["1.0-full"]
        # the alert still goes out; what could not be kept is said, counted and logged
        assert (decision["result"], decision["person"]) == ("match", "obama")
        assert decision["decision_id"] is None and decision["evidence"] is None  # noqa: PT018
        assert r.service.counters["record_errors"] == 1
        assert "could not record the decision for 1.0-full" in caplog.text
        assert "No space left on device" in caplog.text or "disk is full" in caplog.text
        assert integrity(r.service.gallery.store) == "ok"

        filler.unlink()
        event = r.sim.add_event("2.0-room", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", event, updates=0)
        decision = (await watcher.settled({"2.0-room"}))["2.0-room"]
        assert decision["decision_id"] is not None and decision["evidence"] is not None  # noqa: PT018
        assert r.service.counters["record_errors"] == 1


# --- the database locked by another process ------------------------------------------------------

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
    """
)


@contextlib.contextmanager
def locked(database: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's write lock for `seconds`."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(database), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"  # noqa: PT018
        yield process
    finally:
        process.kill()
        process.wait(10)


async def test_a_database_locked_by_another_process(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    async with (
        rig(tmp_path, broker, pipeline, model_dir, web_port=port, web_token=TOKEN) as r,
        clients(broker) as (frigate, watcher),
        aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=AUTH) as http,
    ):
        database = r.service.gallery.store.path
        assert await eventually(lambda: r.service.status()["mqtt"] == "connected", timeout=10)

        # a short lock (under SQLite's 10 s busy timeout): writes wait for it, nothing is lost
        with locked(database, 2.0):
            started = time.monotonic()
            response = await http.post("/api/lists", json={"name": "waited"})
            assert response.status == 201, await response.text()
            event = r.sim.add_event("1.0-short", "front_door", OBAMA, box=BOX)
            await publish_lifecycle(frigate, "frigate", event, updates=0)
            decision = (await watcher.settled({"1.0-short"}, timeout=30))["1.0-short"]
        assert time.monotonic() - started >= 1.0  # it did wait for the lock
        assert decision["decision_id"] is not None  # recorded once the lock was gone
        assert r.service.counters["record_errors"] == 0

        # a lock held past the busy timeout: a clear "try again", the alert still goes out
        with locked(database, 25.0):
            response = await http.post("/api/lists", json={"name": "refused"})
            body = await response.json()
            assert (response.status, body["error"]) == (503, "unavailable"), body
            assert "locked by another process" in body["message"]
            assert response.headers["Retry-After"] == "5"
            reading = await http.get("/api/lists")  # readers are not blocked (WAL)
            assert reading.status == 200
            event = r.sim.add_event("2.0-long", "front_door", OBAMA, box=BOX)
            await publish_lifecycle(frigate, "frigate", event, updates=0)
            decision = (await watcher.settled({"2.0-long"}, timeout=40))["2.0-long"]
            assert (decision["result"], decision["decision_id"]) == ("match", None)
            assert r.service.counters["record_errors"] == 1
            assert "database is locked" in caplog.text

        # released: everything works again, and the store is whole
        response = await http.post("/api/lists", json={"name": "after"})
        assert response.status == 201
        names = {row["name"] for row in await (await http.get("/api/lists")).json()}
        assert {"waited", "after"} <= names and "refused" not in names  # noqa: PT018
        assert integrity(r.service.gallery.store) == "ok"
        assert not r.task.done()


# --- kill -9 during a purge ---------------------------------------------------------------------

PURGER = textwrap.dedent(
    """
    import sys, time
    from face_watchlist.gallery.records import Records
    from face_watchlist.gallery.store import Store
    records = Records(Store(sys.argv[1]), 40_000_000)
    print("purging", flush=True)
    records.purge_evidence(time.time(), time.time())
    records.purge_decisions(time.time())
    print("done", flush=True)
    """
)
DECISIONS = 300


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with DECISIONS reviewed matches and their evidence, recorded two hours ago."""
    data = tmp_path_factory.mktemp("purge") / "data"
    store = Store(data)
    records = Records(store, MAX_PIXELS)
    person_id, list_id = person_and_list(store)
    snapshot = noisy_jpeg(64, 48)
    for n in range(DECISIONS):
        decision = add_match(records, person_id, list_id, snapshot, f"{n}.0-old")
        records.review(decision, "confirm", "token")
    store.close()
    old = time.time() - 7200
    for path in (data / "evidence").rglob("*"):
        os.utime(path, (old, old))
    with sqlite3.connect(data / "gallery.sqlite3") as db:
        db.execute("UPDATE decisions SET created_at = ?", (old,))
    return data


def _consistent(data: Path) -> tuple[int, int]:
    """After a restart: every decision has both its evidence files or none; no file is left that no
    decision names. Returns (decisions with evidence, decisions)."""
    store = Store(data)
    try:
        Records(store, MAX_PIXELS)  # what the service does at start
        assert integrity(store) == "ok"
        rows = store.db.execute("SELECT id, evidence, probe_embedding FROM decisions").fetchall()
        named = {f"{r[1]}{kind}" for r in rows if r[1] is not None for kind in EVIDENCE_KINDS}
        assert evidence_files(store) == named
        for row in rows:
            assert (row[1] is None) == (row[2] is None)  # a purge takes both or neither
        return len([r for r in rows if r[1] is not None]), len(rows)
    finally:
        store.close()


def test_a_purge_killed_at_any_moment_is_consistent_after_restart(seeded: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    outcomes = []
    for trial, delay in enumerate((0.0, 0.003, 0.01, 0.03, 0.1)):
        data = tmp_path / f"trial{trial}"
        shutil.copytree(seeded, data, copy_function=shutil.copy2)  # keeps the old mtimes
        process = subprocess.Popen(
            [sys.executable, "-c", PURGER, str(data)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "purging"  # noqa: PT018
        time.sleep(delay + random.uniform(0, 0.002))
        process.kill()
        process.wait(10)
        outcomes.append(_consistent(data))
        # and the purge, run again, completes: no evidence and no decision left
        rerun = subprocess.run(
            [sys.executable, "-c", PURGER, str(data)], capture_output=True, text=True, env=env, check=False
        )
        assert rerun.returncode == 0, rerun.stderr
        assert _consistent(data) == (0, 0)
    assert all(kept in (0, DECISIONS) and total in (0, DECISIONS) for kept, total in outcomes), outcomes


def _create_list(data: Path) -> None:
    store = Store(data)
    try:
        store.create_list("x")
    finally:
        store.close()


def test_nothing_waits_forever_on_a_lock(tmp_path: Path) -> None:
    """A store opened while another process holds the lock past the timeout: a clear error."""
    store = Store(tmp_path / "data")
    database = store.path
    store.close()
    with locked(database, 30.0):
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _create_list(tmp_path / "data")
        assert time.monotonic() - started < 20
