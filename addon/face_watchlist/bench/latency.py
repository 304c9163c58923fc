"""`face-watchlist bench latency`: Frigate event to our decision, through a real broker.

A private Mosquitto, the Frigate simulator and the service run in this process; enrolled people's
photos are replayed as new tracked objects. Reported: latency from Frigate's `new` message to
our decision message at a steady rate (p50/p95/p99), beside the bare pipeline time on the same
snapshots; throughput when events arrive faster than they can be handled; resident memory before
and after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from face_watchlist.config import load_settings
from face_watchlist.demo import mosquitto
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.images import decode_image
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import FrigateSimulator, event_messages, render_snapshot
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.service import Service

BOX = (390, 40, 890, 700)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float | None:
    """In ms to a tenth; None without values (JSON has no NaN)."""
    return round(float(np.percentile(values, q)), 1) if values else None


def run_latency(pipeline: FacePipeline, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    return asyncio.run(_run(pipeline, args, model_dir))


async def _run(pipeline: FacePipeline, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    people = sorted(p for p in args.gallery.iterdir() if p.is_dir())
    photos = [
        sorted(f for f in p.iterdir() if f.suffix.lower() in enroll.IMAGE_SUFFIXES)[-1]
        for p in people
        if any(f.suffix.lower() in enroll.IMAGE_SUFFIXES for f in p.iterdir())
    ]
    if not photos:
        raise FaceWatchlistError(f"{args.gallery}: no <person>/*.jpg")
    with tempfile.TemporaryDirectory(prefix="fw-latency-") as tmp:
        work = Path(tmp)
        store = Store(work / "data")
        gallery = Gallery(store, pipeline.spec)
        watch_list = store.create_list("bench", policy="immediate")
        settings = load_settings({"data_dir": str(work / "data"), "faces": {"model_dir": str(model_dir)}})
        enroll.Enroller(gallery, pipeline, settings.gate, "enrol").run(
            enroll.folder_jobs(args.gallery), watch_list
        )
        try:
            # the simulator caches its renders: a real Frigate renders on its own cores
            async with mosquitto(work) as port, FrigateSimulator(auth=False, render_cache=256) as sim:
                config = {
                    "data_dir": str(work / "data"),
                    "faces": {"model_dir": str(model_dir)},
                    "mqtt": {"port": port, "client_id": "fw-bench"},
                    "web": {"port": 0},
                    "frigate": {"url": sim.base_url},
                    "watch": {"queue_size": max(64, args.burst * 2), "latest_frame": False},
                }
                service = Service(load_settings(config), pipeline, gallery)
                return await _measure(service, sim, port, photos, args)
        finally:
            store.close()


async def _measure(
    service: Service, sim: FrigateSimulator, port: int, photos: list[Path], args: argparse.Namespace
) -> dict[str, Any]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    timings: dict[str, dict[str, float]] = {}
    frames: list[np.ndarray] = []  # what the service was sent, for the bare pipeline
    rss_start = rss_mb()
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="bench-frigate") as frigate,
        aiomqtt.Client("127.0.0.1", port, identifier="bench-watcher") as watcher,
    ):
        await watcher.subscribe("face_watchlist/events", qos=1)
        await asyncio.sleep(0.5)

        async def collect() -> None:
            async for message in watcher.messages:
                if isinstance(message.payload, bytes):
                    decision = json.loads(message.payload)
                    event_id = decision["event_id"]
                    arrived.setdefault(event_id, time.perf_counter())
                    if not event_id.startswith("m"):
                        timings.setdefault(event_id, decision["timing_ms"])
                    sim.events.pop(event_id, None)  # the simulator forgets, so only we can grow

        collector = asyncio.create_task(collect())

        async def publish(event_id: str, photo: Path) -> None:
            event = sim.add_event(event_id, "front_door", photo.read_bytes(), box=BOX)
            if len(frames) < len(photos):
                shot = render_snapshot(
                    event, crop=False, height=None, quality=70, bbox=False, timestamp=False
                )
                frames.append(decode_image(shot))
            topic, payload = event_messages(event, "new")
            sent[event_id] = time.perf_counter()
            await frigate.publish(topic, payload, qos=1)

        async def wait_for(ids: list[str], timeout: float) -> None:
            deadline = time.perf_counter() + timeout
            while not all(i in arrived for i in ids) and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)

        # steady rate: one event every `1/rate` seconds
        steady = [f"s{n}" for n in range(args.events)]
        for n, event_id in enumerate(steady):
            await publish(event_id, photos[n % len(photos)])
            await asyncio.sleep(1.0 / args.rate)
        await wait_for(steady, 30)
        latencies = [(arrived[i] - sent[i]) * 1000 for i in steady if i in arrived]

        # saturation: a burst, all at once
        burst = [f"b{n}" for n in range(args.burst)]
        start = time.perf_counter()
        for n, event_id in enumerate(burst):
            await publish(event_id, photos[n % len(photos)])
        await wait_for(burst, 120)
        burst_s = max((arrived[i] for i in burst if i in arrived), default=start) - start
        soak = await _soak(service, photos, args.soak, publish, arrived) if args.soak else None
        collector.cancel()
        stop.set()
        await asyncio.wait_for(task, 20)

    bare = []
    for _ in range(3):
        for frame in frames:
            t = time.perf_counter()
            service.pipeline.analyse(frame)
            bare.append((time.perf_counter() - t) * 1000)
    bare_ms = statistics.median(bare)
    done_burst = sum(1 for i in burst if i in arrived)
    p50 = percentile(latencies, 50)
    return {
        "pack": service.pipeline.spec.name,
        "events": len(steady),
        "rate_per_s": args.rate,
        "decided": len(latencies),
        "latency_ms": {"p50": p50, "p95": percentile(latencies, 95), "p99": percentile(latencies, 99)},
        "bare_pipeline_ms_p50": round(bare_ms, 1),
        # inside the service: fetching the snapshot from the (in-process) simulator, then
        # decode + models + search
        "service_fetch_ms_p50": percentile(
            [timings[i].get("fetch_ms", 0.0) for i in steady if i in timings], 50
        ),
        "service_match_ms_p50": percentile(
            [timings[i].get("match_ms", 0.0) for i in steady if i in timings], 50
        ),
        "overhead_ms_p50": round(p50 - bare_ms, 1) if p50 is not None else None,
        "burst": len(burst),
        "burst_decided": done_burst,
        "throughput_per_s": round(done_burst / burst_s, 2) if burst_s > 0 else None,
        "bare_pipeline_per_s": round(1000 / bare_ms, 2),
        "throughput_ratio": round((done_burst / burst_s) / (1000 / bare_ms), 3) if burst_s > 0 else None,
        "dropped": service.counters["dropped_queue_full"],
        "rss_mb": {"start": round(rss_start, 1), "end": round(rss_mb(), 1)},
        "soak": soak,
        "note": "snapshots are 1280x720 frames with the person's photo in a 500x660 box",
    }


async def _soak(
    service: Service,
    photos: list[Path],
    count: int,
    publish: Callable[[str, Path], Awaitable[None]],
    arrived: dict[str, float],
) -> dict[str, Any]:
    """`count` more events as fast as the service takes them (never more than half its queue
    waiting, so none is dropped); resident memory after the first tenth (warm) and at the end."""
    window = max(2, service.settings.watch["queue_size"] // 2)
    warm_at = max(1, count // 10)
    rss_warm = rss_mb()
    start = time.perf_counter()
    oldest = 0  # every event before this one has its decision
    for n in range(count):
        while n - oldest >= window:
            while oldest < n and f"m{oldest}" in arrived:
                oldest += 1
            if n - oldest >= window:
                await asyncio.sleep(0.002)
        await publish(f"m{n}", photos[n % len(photos)])
        if n == warm_at:
            gc.collect()
            rss_warm = rss_mb()
    deadline = time.perf_counter() + 60
    while sum(1 for i in range(count) if f"m{i}" in arrived) < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    decided = sum(1 for i in range(count) if f"m{i}" in arrived)
    elapsed = time.perf_counter() - start
    for i in range(count):  # our own bookkeeping must not count as the service's growth
        arrived.pop(f"m{i}", None)
    gc.collect()
    rss_end = rss_mb()
    return {
        "events": count,
        "decided": decided,
        "per_s": round(decided / elapsed, 2),
        "rss_warm_mb": round(rss_warm, 1),
        "rss_end_mb": round(rss_end, 1),
        "growth_mb": round(rss_end - rss_warm, 1),
        "dropped": service.counters["dropped_queue_full"],
    }
