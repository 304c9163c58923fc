"""`face-watchlist bench api`: the HTTP API's list pages at registry scale.

Seeds a fresh data directory straight through SQLite (fast: no photos, no models): `people`
people on three lists, one photo and one random 128-d template each, and `decisions` decisions
over 30 days on eight cameras (10% matches with review states, the rest unknown / no_face). Then
serves the real application in-process and times each list route one request at a time over real
HTTP (aiohttp client, loopback), after a warm-up. Reports p50 / p95 / max per route in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from face_watchlist.config import Settings, load_settings
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store, now
from face_watchlist.service import Service
from face_watchlist.web.app import make_app

TOKEN = "bench-token-0123456789abcdef"
CAMERAS = [f"camera_{n}" for n in range(8)]
LISTS = ("registry", "staff", "visitors")
STATES = ("pending_review", "alert", "confirmed", "rejected")


def seed(store: Store, pack: str, people: int, decisions: int, seed_value: int = 1) -> None:
    rng = np.random.default_rng(seed_value)
    list_ids = [store.create_list(name, "known" if name == "staff" else "watch").id for name in LISTS]
    stamp = now()
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO people (id, display_name, external_id, notes, created_at) VALUES (?,?,?,?,?)",
            (
                (i, f"Person {rng.integers(1 << 30):09d}", f"R-{i:07d}", "", stamp)
                for i in range(1, people + 1)
            ),
        )
        db.executemany(
            "INSERT INTO memberships (person_id, list_id, added_at) VALUES (?,?,?)",
            ((i, list_ids[i % len(list_ids)], stamp) for i in range(1, people + 1)),
        )
        db.executemany(
            "INSERT INTO photos (id, person_id, sha256, path, face_box, source, added_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                (i, i, hashlib.sha256(str(i).encode()).hexdigest(), f"{i}/x.jpg", "0,0,1,1", "bench", stamp)
                for i in range(1, people + 1)
            ),
        )
        vectors = rng.standard_normal((people, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        db.executemany(
            "INSERT INTO templates (person_id, photo_id, pack, embedding, face_px, sharpness, frontalness,"
            " det_score, method, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                (i, i, pack, vectors[i - 1].tobytes(), 120.0, 100.0, 0.9, 0.9, "bench", stamp)
                for i in range(1, people + 1)
            ),
        )
        db.execute("INSERT INTO index_generation (pack, generation) VALUES (?, 1)", (pack,))
        start = time.time() - 30 * 86400
        db.executemany(
            "INSERT INTO decisions (event_id, camera, created_at, result, attempts, person_id, person_name,"
            " list_id, list_name, score, margin, false_match_rate, review_state)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (_decision(rng, n, start, people, list_ids) for n in range(decisions)),
        )


def _decision(
    rng: np.random.Generator, n: int, start: float, people: int, list_ids: list[int]
) -> tuple[Any, ...]:
    when = start + n * (30 * 86400 / max(1, n + 1))
    camera = CAMERAS[n % len(CAMERAS)]
    if rng.random() < 0.1:
        person = int(rng.integers(1, people + 1))
        list_index = person % len(list_ids)
        return (
            f"{when:.3f}-{n}",
            camera,
            when,
            "match",
            2,
            person,
            f"Person {person}",
            list_ids[list_index],
            LISTS[list_index],
            0.6,
            0.2,
            1e-5,
            STATES[n % 4],
        )
    result = "unknown" if rng.random() < 0.7 else "no_face"
    return (f"{when:.3f}-{n}", camera, when, result, 1, None, None, None, None, 0.2, None, None, None)


ROUTES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("lists", "/api/lists", {}),
    ("people, first page", "/api/people", {}),
    ("people, page 100", "/api/people", {"offset": 5000}),
    ("people, one list", "/api/people", {"list": "registry"}),
    ("people, search", "/api/people", {"q": "Person 1"}),
    ("decisions, first page", "/api/decisions", {}),
    ("decisions, page 1000", "/api/decisions", {"offset": 50000}),
    ("decisions, pending review", "/api/decisions", {"status": "pending_review"}),
    ("decisions, one camera", "/api/decisions", {"camera": "camera_3"}),
    ("decisions, last day", "/api/decisions", {"since": time.time() - 86400}),
    ("status", "/api/status", {}),
)


async def _measure(service: Service, requests: int) -> dict[str, dict[str, float]]:
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(service, TOKEN)))
    await client.start_server()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    report: dict[str, dict[str, float]] = {}
    try:
        for name, path, params in ROUTES:
            times = []
            for n in range(requests + 5):
                started = time.perf_counter()
                response = await client.get(path, params=params, headers=headers)
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path} answered {response.status}")
                if n >= 5:  # warm-up
                    times.append((time.perf_counter() - started) * 1000)
            ordered = np.array(times)
            report[name] = {
                "p50_ms": round(float(np.percentile(ordered, 50)), 2),
                "p95_ms": round(float(np.percentile(ordered, 95)), 2),
                "max_ms": round(float(ordered.max()), 2),
            }
    finally:
        await client.close()
    return report


def run_api(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fw-bench-api-") as folder:
        data = Path(folder)
        options = load_settings({"data_dir": str(data), "faces": {"model_dir": str(settings.model_dir)}})
        store = Store(data)
        try:
            started = time.perf_counter()
            seed(store, options.pipeline.pack, args.people, args.decisions)
            seeded = time.perf_counter() - started
            gallery = Gallery(store, get_pack(options.pipeline.pack))
            pipeline = FacePipeline.load(options.model_dir, options.pipeline)
            report = asyncio.run(_run(options, pipeline, gallery, args.requests))
        finally:
            store.close()
    return {
        "people": args.people,
        "decisions": args.decisions,
        "requests_per_route": args.requests,
        "seed_s": round(seeded, 1),
        "routes": report,
    }


async def _run(settings: Settings, pipeline: FacePipeline, gallery: Gallery, requests: int) -> dict[str, Any]:
    return await _measure(Service(settings, pipeline, gallery), requests)
