"""`face-watchlist run`: Frigate's person events in, decisions out on MQTT.

The event loop only moves messages: intake (aiomqtt, QoS 1, persistent session, reconnect with
backoff) feeds a bounded queue; a worker fetches the snapshot from Frigate and runs detection and
matching in a thread (onnxruntime releases the GIL); outputs go back over MQTT. A full queue
drops the attempt and counts it; nothing grows without bound. Faces that match nobody leave no
trace: only counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiomqtt
import numpy as np
from aiohttp import web

from face_watchlist import __version__
from face_watchlist.config import Settings
from face_watchlist.errors import FaceWatchlistError, ImageError
from face_watchlist.faces.images import decode_image
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.frigate.client import FrigateClient, FrigateError
from face_watchlist.frigate.events import FrigateEvent, Refused, parse_event
from face_watchlist.frigate.tracker import Filters, Step, Tracker
from face_watchlist.gallery.gallery import Candidates, Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.outputs.messages import (
    DecisionMessage,
    available_topic,
    camera_topic,
    events_topic,
)
from face_watchlist.web.app import make_app

LOG = logging.getLogger(__name__)
WORKERS = 2
PUBLISH_TIMEOUT_S = 3.0


@dataclass
class _Sighting:
    """What we have learnt about one tracked object so far (embeddings stay in memory only)."""

    camera: str
    found: list[Candidates] = field(default_factory=list)
    attempts: int = 0
    faces: int = 0
    published_match: bool = False
    # one job at a time per object, in arrival order (asyncio.Lock is FIFO): an `end` must not
    # overtake the attempt before it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class _Job:
    event: FrigateEvent
    step: Step
    received: float


class Service:
    def __init__(self, settings: Settings, pipeline: FacePipeline, gallery: Gallery) -> None:
        self.settings, self.pipeline, self.gallery = settings, pipeline, gallery
        watch = settings.watch
        self.tracker = Tracker(
            Filters(frozenset(watch["cameras"]), frozenset(watch["zones"]), frozenset(watch["labels"])),
            budget=watch["attempts"],
        )
        # bounded in on_message: attempts beyond queue_size are dropped, an object's last word never
        # is (one per tracked object, so the queue stays under queue_size + tracker.max_objects)
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.sightings: OrderedDict[str, _Sighting] = OrderedDict()
        self.counters: Counter[str] = Counter()
        self.frigate_up: bool | None = None
        self._client: aiomqtt.Client | None = None
        self._frigate: FrigateClient | None = None
        self._models = asyncio.Lock()

    @property
    def models_lock(self) -> asyncio.Lock:
        """Held around every inference (the detector is not thread-safe): live events and the web's
        enrolments share the models."""
        return self._models

    # intake --------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        prefix = self.settings.frigate["topic_prefix"]
        if topic == f"{prefix}/available":
            self.frigate_up = payload.strip() == b"online"
            LOG.info("Frigate says it is %s", payload[:20].decode(errors="replace"))
            return
        try:
            event = parse_event(payload)
        except Refused as err:
            self.counters["refused_messages"] += 1
            LOG.debug("ignored a Frigate message: %s", err)
            return
        step = self.tracker.step(event)
        if step.action == "skip" and not step.final:
            self.counters[f"skipped: {step.reason}"] += 1
            return
        if self.queue.qsize() >= self.settings.watch["queue_size"]:
            self.counters["dropped_queue_full"] += 1
            if not step.final:
                LOG.warning(
                    "queue full: dropped an attempt for %s (%d dropped so far)",
                    event.id,
                    self.counters["dropped_queue_full"],
                )
                return
            step = Step("skip", "ended, queue full", final=True)  # give up only the last look
        self.queue.put_nowait(_Job(event, step, time.monotonic()))

    # work ------------------------------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._handle(job)
            except Exception:  # a bug must not stop the service: log it, count it, go on
                self.counters["errors"] += 1
                LOG.exception("error while handling %s", job.event.id)
            finally:
                self.queue.task_done()

    async def _handle(self, job: _Job) -> None:
        event = job.event
        sighting = self.sightings.setdefault(event.id, _Sighting(event.camera))
        self.sightings.move_to_end(event.id)
        while len(self.sightings) > self.tracker.max_objects:
            self.sightings.popitem(last=False)
        async with sighting.lock:
            await self._handle_in_order(job, sighting)

    async def _handle_in_order(self, job: _Job, sighting: _Sighting) -> None:
        event, step = job.event, job.step
        timing: dict[str, float] = {}
        if step.action == "attempt":
            await self._attempt(event, sighting, timing)
        decision_now = sighting.found and not sighting.published_match
        if decision_now or step.final:
            message = self._message(event, sighting, step.final, timing, job.received)
            if message.result == "match" and not step.final:
                sighting.published_match = True
                self.tracker.settle(event.id)
                await self._publish(message)
            elif step.final and not (sighting.published_match and message.result == "match"):
                await self._publish(message)
        if step.final:
            self.sightings.pop(event.id, None)

    async def _attempt(self, event: FrigateEvent, sighting: _Sighting, timing: dict[str, float]) -> None:
        assert self._frigate is not None
        sighting.attempts += 1
        start = time.perf_counter()
        try:
            data = await self._frigate.snapshot(event.id, height=self.settings.watch["snapshot_height"])
        except FrigateError as err:
            self.counters["frigate_errors"] += 1
            LOG.warning("no snapshot for %s: %s", event.id, err)
            return
        timing["fetch_ms"] = round((time.perf_counter() - start) * 1000, 1)
        start = time.perf_counter()
        try:
            async with self._models:  # the detector is not thread-safe: one inference at a time
                embeddings = await asyncio.to_thread(self._embed, data)
        except ImageError as err:
            self.counters["bad_images"] += 1
            LOG.warning("unusable snapshot for %s: %s", event.id, err)
            return
        if embeddings:
            # the store's connection belongs to the loop's thread: search here (about a millisecond)
            found = [self.gallery.candidates(e) for e in embeddings]
            sighting.found.append(max(found, key=lambda c: c.ranked[0].score if c.ranked else -1.0))
        timing["match_ms"] = round((time.perf_counter() - start) * 1000, 1)
        sighting.faces += len(embeddings)

    def _embed(self, data: bytes) -> list[np.ndarray]:
        """Runs in a worker thread: decode, detect, gate, embed. Nothing is written anywhere."""
        image = decode_image(data, self.settings.max_pixels)
        faces = self.pipeline.analyse(image)
        return [
            f.embedding for f in faces if f.embedding is not None and self.settings.gate.passes(f.quality)
        ]

    def _message(
        self, event: FrigateEvent, sighting: _Sighting, final: bool, timing: dict[str, float], received: float
    ) -> DecisionMessage:
        timing = {**timing, "total_ms": round((time.monotonic() - received) * 1000, 1)}
        base: dict[str, Any] = {
            "event_id": event.id,
            "camera": event.camera,
            "attempts": sighting.attempts,
            "faces_seen": sighting.faces,
            "final": final,
            "timing_ms": timing,
            "timestamp": time.time(),
        }
        if not sighting.found:
            return DecisionMessage(
                result="no_face",
                person=None,
                person_id=None,
                list=None,
                list_kind=None,
                review_state=None,
                score=None,
                margin=None,
                false_match_rate=None,
                **base,
            )
        decision = self.gallery.decide(sighting.found)
        matched = decision.outcome == "match" and decision.list is not None
        person = (
            self.gallery.store.get_person(decision.person_id).display_name
            if matched and decision.person_id
            else None
        )
        review = None
        if matched and decision.list is not None:
            review = "pending_review" if decision.list.policy == "review_first" else "alert"
        return DecisionMessage(
            result="match" if matched else "unknown",
            person=person,
            person_id=decision.person_id if matched else None,
            list=decision.list.name if matched and decision.list else None,
            list_kind=decision.list.kind if matched and decision.list else None,
            review_state=review,
            score=round(decision.score, 4),
            margin=round(decision.margin, 4),
            false_match_rate=float(f"{decision.false_match_rate:.3g}"),
            **base,
        )

    # outputs ---------------------------------------------------------------------------------

    async def _publish(self, message: DecisionMessage) -> None:
        self.counters[f"published_{message.result}"] += 1
        LOG.info(
            "%s %s on %s: %s %s",
            "final" if message.final else "early",
            message.event_id,
            message.camera,
            message.result,
            message.person or "",
        )
        if self._client is None:
            return
        payload = message.payload()
        try:
            # a broker that just died must not hold a worker for aiomqtt's default 10 s
            await self._client.publish(events_topic(), payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
            await self._client.publish(
                camera_topic(message.camera), payload, qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S
            )
        except aiomqtt.MqttError as err:
            self.counters["publish_errors"] += 1
            LOG.warning("could not publish the decision for %s: %s", message.event_id, err)

    def status(self) -> dict[str, Any]:
        """What health checks, the HTTP API and the status topic report."""
        frigate = {None: "unknown", True: "up", False: "down"}[self.frigate_up]
        return {
            "version": __version__,
            "pack": self.settings.pipeline.pack,
            "mqtt": "connected" if self._client is not None else "disconnected",
            "frigate": frigate,
            "queue_depth": self.queue.qsize(),
            "queue_size": self.settings.watch["queue_size"],
            "tracked_objects": len(self.sightings),
            "counters": dict(self.counters),
        }

    # the loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        mqtt, frigate = self.settings.mqtt, self.settings.frigate
        async with aiohttp.ClientSession() as http:
            self._frigate = FrigateClient(http, frigate["url"], frigate["username"], frigate["password"])
            # two workers: one fetches from Frigate while the other runs the models
            workers = [asyncio.create_task(self.worker()) for _ in range(WORKERS)]
            stopper = asyncio.create_task(stop.wait())
            web_runner = await self._start_web()
            try:
                backoff = 1.0
                while not stop.is_set():
                    try:
                        await self._session(mqtt, stopper)
                        backoff = 1.0
                    except aiomqtt.MqttError as err:
                        self._client = None
                        LOG.warning(
                            "MQTT broker %s:%s unavailable (%s); retrying in %.0f s",
                            mqtt["host"],
                            mqtt["port"],
                            err,
                            backoff,
                        )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), backoff)
                        backoff = min(backoff * 2, 30.0)
            finally:
                if web_runner is not None:
                    await web_runner.cleanup()
                stopper.cancel()
                for worker in workers:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker

    async def _start_web(self) -> web.AppRunner | None:
        options = self.settings.web
        if not options["port"]:
            return None
        runner = web.AppRunner(make_app(self, options["token"]), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, options["host"], options["port"]).start()
        LOG.info("HTTP API on http://%s:%s/api", options["host"], options["port"])
        return runner

    async def _session(self, mqtt: dict[str, Any], stopper: asyncio.Task[Any]) -> None:
        will = aiomqtt.Will(available_topic(), b"offline", qos=1, retain=True)
        async with aiomqtt.Client(
            mqtt["host"],
            mqtt["port"],
            username=mqtt["username"],
            password=mqtt["password"],
            identifier=mqtt["client_id"],
            clean_session=False,
            will=will,
            keepalive=30,
        ) as client:
            self._client = client
            prefix = self.settings.frigate["topic_prefix"]
            await client.subscribe([(f"{prefix}/events", 1), (f"{prefix}/available", 1)])
            await client.publish(available_topic(), b"online", qos=1, retain=True)
            LOG.info("listening to %s/events on %s:%s", prefix, mqtt["host"], mqtt["port"])
            messages = asyncio.ensure_future(self._consume(client))
            try:
                await asyncio.wait({messages, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    await self.queue.join()
                    await client.publish(available_topic(), b"offline", qos=1, retain=True)
                else:
                    messages.result()  # re-raise the broker error
            finally:
                messages.cancel()
                self._client = None

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self.on_message(str(message.topic), payload)


def open_service(settings: Settings) -> tuple[Service, Store]:
    """Models and gallery for `run` (slow: call from a thread or before the loop starts)."""
    pipeline = FacePipeline.load(settings.model_dir, settings.pipeline)
    store = Store(settings.data_dir)
    try:
        return Service(settings, pipeline, Gallery(store, get_pack(settings.pipeline.pack))), store
    except FaceWatchlistError:
        store.close()
        raise
