"""`face-watchlist bench load`: many cameras bursting through a real broker, then idle.

A private Mosquitto, the Frigate simulator (renders cached, as a real Frigate renders on its own
cores) and the service with its HTTP API run in this process. `cameras` cameras together start
`rate` tracked people a second for `seconds` seconds; each person leaves (`end`) `dwell` seconds
after arriving. Meanwhile the API's health route is asked every 100 ms over HTTP, the queue depth
sampled every 20 ms and resident memory every 0.5 s. Then nothing for `idle` seconds.

Reported: health latency during the burst (p50/p99/max); the queue's largest depth against its
bound; objects sent, attempts dropped on a full queue (the service's own counter, and as
`/api/status` reports it), objects decided and lost (sent but never given a decision: must be 0);
memory at baseline (warm, before the burst), at its peak and after the idle period.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from face_watchlist.bench.latency import BOX, percentile, rss_mb
from face_watchlist.config import load_settings
from face_watchlist.demo import free_port, mosquitto
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import Camera, FrigateSimulator, SimEvent, event_messages
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.service import Service

TOKEN = "load-bench-token-0123456789"


def run_load(pipeline: FacePipeline, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    # one "queue full" warning per dropped attempt would bury the report: they are counted in it
    logger = logging.getLogger("face_watchlist.service")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return asyncio.run(_run(pipeline, args, model_dir))
    finally:
        logger.setLevel(level)


async def _run(pipeline: FacePipeline, args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    photos = sorted(p for p in args.gallery.rglob("*") if p.suffix.lower() in enroll.IMAGE_SUFFIXES)
    if not photos:
        raise FaceWatchlistError(f"{args.gallery}: no <person>/*.jpg")
    with tempfile.TemporaryDirectory(prefix="fw-load-") as tmp:
        work = Path(tmp)
        store = Store(work / "data")
        gallery = Gallery(store, pipeline.spec)
        watch_list = store.create_list("bench", policy="immediate")
        base = {"data_dir": str(work / "data"), "faces": {"model_dir": str(model_dir)}}
        enroll.Enroller(gallery, pipeline, load_settings(base).gate, "enrol").run(
            enroll.folder_jobs(args.gallery), watch_list
        )
        try:
            async with mosquitto(work) as port, FrigateSimulator(auth=False, render_cache=64) as sim:
                web_port = free_port()
                config = {
                    **base,
                    "mqtt": {"port": port, "client_id": "fw-load"},
                    "web": {"port": web_port, "token": TOKEN},
                    "frigate": {"url": sim.base_url},
                    "watch": {"queue_size": args.queue_size, "latest_frame": False},
                }
                service = Service(load_settings(config), pipeline, gallery)
                load = _Load(service, sim, port, web_port, [p.read_bytes() for p in photos], args)
                return await load.run()
        finally:
            store.close()


class _Load:
    def __init__(
        self,
        service: Service,
        sim: FrigateSimulator,
        port: int,
        web_port: int,
        photos: list[bytes],
        args: argparse.Namespace,
    ) -> None:
        self.service, self.sim, self.port, self.photos, self.args = service, sim, port, photos, args
        self.health_url = f"http://127.0.0.1:{web_port}/api/health"
        self.decided: dict[str, dict[str, Any]] = {}
        self.sent: list[str] = []
        self.health_ms: list[float] = []
        self.health_failures = 0
        self.queue_max = 0
        self.rss_peak = 0.0
        self.bursting = False
        for n in range(args.cameras):
            sim.add_camera(Camera(f"camera_{n:02d}"))

    async def run(self) -> dict[str, Any]:
        stop = asyncio.Event()
        task = asyncio.create_task(self.service.run(stop))
        try:
            async with (
                aiomqtt.Client("127.0.0.1", self.port, identifier="load-frigate") as frigate,
                aiomqtt.Client("127.0.0.1", self.port, identifier="load-watcher") as watcher,
                aiohttp.ClientSession() as http,
            ):
                await watcher.subscribe("face_watchlist/events", qos=1)
                collector = asyncio.create_task(self._collect(watcher))
                await self._until_healthy(http)
                # warm-up: a few objects so that the baseline has the models and buffers in use
                await self._objects(frigate, count=min(8, len(self.photos)), prefix="w", rate=4.0)
                await self._settle(timeout=60)
                gc.collect()
                rss_baseline = rss_mb()
                samplers = [
                    asyncio.create_task(self._probe_health(http)),
                    asyncio.create_task(self._sample()),
                ]
                self.bursting = True
                started = time.perf_counter()
                count = round(self.args.rate * self.args.seconds)
                await self._objects(frigate, count=count, prefix="b", rate=self.args.rate)
                burst_s = time.perf_counter() - started
                await self._settle(timeout=max(60.0, self.args.dwell * 4))
                drain_s = time.perf_counter() - started
                self.bursting = False
                await asyncio.sleep(self.args.idle)
                gc.collect()
                rss_after = rss_mb()
                status_url = self.health_url.replace("health", "status")
                headers = {"Authorization": f"Bearer {TOKEN}"}
                status = await (await http.get(status_url, headers=headers)).json()
                for sampler in (*samplers, collector):
                    sampler.cancel()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        return self._report(count, burst_s, drain_s, rss_baseline, rss_after, status)

    async def _until_healthy(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(self.health_url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise FaceWatchlistError("the service did not become healthy within 30 s")

    async def _collect(self, watcher: aiomqtt.Client) -> None:
        async for message in watcher.messages:
            if isinstance(message.payload, bytes):
                decision = json.loads(message.payload)
                self.decided.setdefault(decision["event_id"], decision)
                self.sim.events.pop(decision["event_id"], None)  # the simulator forgets: only we may grow

    async def _objects(self, frigate: aiomqtt.Client, count: int, prefix: str, rate: float) -> None:
        """`count` people at `rate` a second over the cameras, each leaving `dwell` s later."""
        start = time.perf_counter()
        leaving: list[asyncio.Task[None]] = []
        for n in range(count):
            camera = f"camera_{n % self.args.cameras:02d}"
            event = self.sim.add_event(f"{prefix}{n}", camera, self.photos[n % len(self.photos)], box=BOX)
            self.sent.append(event.id)
            await frigate.publish(*event_messages(event, "new"), qos=1)
            leaving.append(asyncio.create_task(self._leave(frigate, event)))
            delay = start + (n + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*leaving)

    async def _leave(self, frigate: aiomqtt.Client, event: SimEvent) -> None:
        await asyncio.sleep(self.args.dwell)
        event.end_time = event.frame_time + self.args.dwell
        await frigate.publish(*event_messages(event, "end"), qos=1)

    async def _settle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.decided for i in self.sent) and self.service.queue.qsize() == 0:
                return
            await asyncio.sleep(0.05)

    async def _probe_health(self, http: aiohttp.ClientSession) -> None:
        while True:
            started = time.perf_counter()
            try:
                async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if self.bursting:
                self.health_ms.append((time.perf_counter() - started) * 1000)
                self.health_failures += not ok
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))

    async def _sample(self) -> None:
        ticks = 0
        while True:
            self.queue_max = max(self.queue_max, self.service.queue.qsize())
            if ticks % 25 == 0:
                self.rss_peak = max(self.rss_peak, rss_mb())
            ticks += 1
            await asyncio.sleep(0.02)

    def _report(
        self,
        count: int,
        burst_s: float,
        drain_s: float,
        rss_baseline: float,
        rss_after: float,
        status: dict[str, Any],
    ) -> dict[str, Any]:
        burst = [i for i in self.sent if i.startswith("b")]
        decided = [self.decided[i] for i in burst if i in self.decided]
        counters = self.service.counters
        return {
            "cameras": self.args.cameras,
            "rate_per_s": self.args.rate,
            "seconds": self.args.seconds,
            "dwell_s": self.args.dwell,
            "objects_sent": count,
            "burst_s": round(burst_s, 1),
            "drained_s": round(drain_s, 1),
            "decided": len(decided),
            "lost": len(burst) - len(decided),
            "results": {r: sum(d["result"] == r for d in decided) for r in ("match", "unknown", "no_face")},
            "never_looked_at": sum(d["attempts"] == 0 for d in decided),
            "dropped_queue_full": counters["dropped_queue_full"],
            "dropped_reported_by_status": status["counters"].get("dropped_queue_full", 0),
            "errors": counters["errors"] + counters["record_errors"] + counters["publish_errors"],
            "queue_size": self.service.settings.watch["queue_size"],
            "queue_max_depth": self.queue_max,
            "health_ms": {
                "requests": len(self.health_ms),
                "failures": self.health_failures,
                "p50": percentile(self.health_ms, 50),
                "p99": percentile(self.health_ms, 99),
                "max": round(max(self.health_ms), 1) if self.health_ms else None,
            },
            "rss_mb": {
                "baseline": round(rss_baseline, 1),
                "peak": round(max(self.rss_peak, rss_baseline), 1),
                "after_idle": round(rss_after, 1),
                "idle_s": self.args.idle,
                "change_pct": round(100 * (rss_after - rss_baseline) / rss_baseline, 1),
            },
        }
