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
import sqlite3
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import aiohttp
import aiomqtt
import cv2
import numpy as np
from aiohttp import web

from face_watchlist import __version__, memory
from face_watchlist.config import Settings
from face_watchlist.errors import FaceWatchlistError, ImageError
from face_watchlist.faces.images import decode_image, encode_jpeg
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.frigate.client import FrigateClient, FrigateError
from face_watchlist.frigate.events import FrigateEvent, Refused, parse_event
from face_watchlist.frigate.tracker import Filters, Step, Tracker
from face_watchlist.gallery.gallery import Candidates, Gallery
from face_watchlist.gallery.records import DecisionRecord, Evidence, Records, ReviewAction, crop_jpeg
from face_watchlist.gallery.store import Store
from face_watchlist.outputs.base import Output
from face_watchlist.outputs.build import build_outputs
from face_watchlist.outputs.messages import (
    DecisionMessage,
    available_topic,
    camera_topic,
    dumps,
    events_topic,
    person_topic,
    review_state,
    reviews_topic,
    status_topic,
)
from face_watchlist.trust.retention import purge
from face_watchlist.web.app import make_app

LOG = logging.getLogger(__name__)
WORKERS = 2
PUBLISH_TIMEOUT_S = 3.0
STATUS_EVERY_S, STATUS_MIN_GAP_S = 60.0, 1.0
PERSON_PAD = 0.15  # around Frigate's person box: the box lags a moving person a little
Listener = Callable[[str, dict[str, Any]], None]
_Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Look:
    """One usable face: its embedding, its box and the picture it is in (memory only)."""

    embedding: np.ndarray
    box: _Box
    picture: bytes
    face: bytes  # the evidence crop (JPEG), made while the picture was decoded anyway


@dataclass
class _Sighting:
    """What we have learnt about one tracked object so far (embeddings stay in memory only)."""

    camera: str
    found: list[Candidates] = field(default_factory=list)
    looks: list[_Look] = field(default_factory=list)  # the face behind each entry of `found`
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
    def __init__(
        self, settings: Settings, pipeline: FacePipeline, gallery: Gallery, outputs: Sequence[Output] = ()
    ) -> None:
        self.settings, self.pipeline, self.gallery = settings, pipeline, gallery
        self.outputs = list(outputs)
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
        self._listeners: list[Listener] = []
        self._status_changed = asyncio.Event()
        self._handled = self._handled_at_trim = 0
        self.records = Records(gallery.store, settings.max_pixels)
        self.cameras: set[str] = set(watch["cameras"])

    @property
    def models_lock(self) -> asyncio.Lock:
        """Held around every inference (the detector is not thread-safe): live events and the web's
        enrolments share the models."""
        return self._models

    @property
    def frigate_client(self) -> FrigateClient | None:
        """Frigate's API while the service runs (the web's "enrol from an event")."""
        return self._frigate

    # intake --------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        prefix = self.settings.frigate["topic_prefix"]
        if topic == f"{prefix}/available":
            self.frigate_up = payload.strip() == b"online"
            self._status_changed.set()
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
            if step.action == "attempt":  # a look not taken; an end with nothing to look at drops nothing
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
                self._handled += 1
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
        # one decision per tracked object: the first confident match, or the final word
        if not sighting.published_match and (sighting.found or step.final):
            message = self._message(event, sighting, step.final, timing, job.received)
            if message.result == "match" and not step.final:
                sighting.published_match = True
                self.tracker.settle(event.id)
                await self._publish(await self._record(message, sighting))
            elif step.final:
                await self._publish(await self._record(message, sighting))
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
        looks = await self._looks(event.id, event.camera, data)
        if looks is not None and not looks and event.box is not None and self.settings.watch["latest_frame"]:
            looks = await self._latest_frame_looks(event, timing)
        if looks:
            # the store's connection belongs to the loop's thread: search here (about a millisecond)
            found = [(self.gallery.candidates(look.embedding), look) for look in looks]
            candidates, look = max(found, key=lambda f: _top(f[0]))
            sighting.found.append(candidates)
            sighting.looks.append(look)
        timing["match_ms"] = round((time.perf_counter() - start) * 1000, 1)
        sighting.faces += len(looks or [])

    async def _looks(
        self, event_id: str, camera: str, data: bytes, person: _Box | None = None
    ) -> list[_Look] | None:
        """The usable faces in a picture (None: not a picture we can read). Only the models run
        under the lock: decoding and cropping overlap with the other worker's inference."""
        try:
            image, picture = await asyncio.to_thread(self._prepare, data, person)
            async with self._models:  # the detector is not thread-safe: one inference at a time
                faces = await asyncio.to_thread(self.pipeline.analyse, image, True, person is not None)
            gate = self.settings.gate_for(camera)
            usable = [f for f in faces if f.embedding is not None and gate.passes(f.quality)]
            crops = await asyncio.to_thread(lambda: [crop_jpeg(image, f.detection.box) for f in usable])
        except ImageError as err:
            self.counters["bad_images"] += 1
            LOG.warning("unusable picture for %s: %s", event_id, err)
            return None
        return [
            _Look(f.embedding, f.detection.box, picture, crop)
            for f, crop in zip(usable, crops, strict=True)
            if f.embedding is not None
        ]

    def _prepare(self, data: bytes, person: _Box | None) -> tuple[np.ndarray, bytes]:
        """Runs in a thread: decode, and crop around the person (then the crop is the evidence)."""
        image = decode_image(data, self.settings.max_pixels)
        if person is None:
            return image, data
        image = person_crop(image, person)
        return image, encode_jpeg(image)

    async def _latest_frame_looks(self, event: FrigateEvent, timing: dict[str, float]) -> list[_Look]:
        """No usable face in the snapshot: look around the person in the camera's current full
        detect-resolution frame (Frigate's snapshot is often scaled down, or caught the back of
        the head)."""
        assert self._frigate is not None
        assert event.box is not None
        start = time.perf_counter()
        try:
            frame = await self._frigate.latest_frame(event.camera)
        except FrigateError as err:
            self.counters["frigate_errors"] += 1
            LOG.warning("no latest frame of %s: %s", event.camera, err)
            return []
        timing["latest_frame_ms"] = round((time.perf_counter() - start) * 1000, 1)
        self.counters["latest_frame_looks"] += 1
        looks = await self._looks(event.id, event.camera, frame, event.box) or []
        self.counters["latest_frame_faces"] += bool(looks)
        return looks

    def _message(
        self, event: FrigateEvent, sighting: _Sighting, final: bool, timing: dict[str, float], received: float
    ) -> DecisionMessage:
        timing = {**timing, "total_ms": round((time.monotonic() - received) * 1000, 1)}
        base = DecisionMessage(
            event_id=event.id,
            camera=event.camera,
            result="no_face",
            attempts=sighting.attempts,
            faces_seen=sighting.faces,
            final=final,
            timing_ms=timing,
            timestamp=time.time(),
        )
        if not sighting.found:
            return base
        decision = self.gallery.decide(sighting.found)
        if decision.outcome != "match" or decision.list is None or decision.person_id is None:
            return replace(
                base, result="unknown", score=round(decision.score, 4), margin=round(decision.margin, 4)
            )
        return replace(
            base,
            result="match",
            person=self.gallery.store.get_person(decision.person_id).display_name,
            person_id=decision.person_id,
            list=decision.list.name,
            list_id=decision.list.id,
            list_kind=decision.list.kind,
            review_state=review_state(decision.list.policy, decision.list.schedule),
            score=round(decision.score, 4),
            margin=round(decision.margin, 4),
            false_match_rate=float(f"{decision.false_match_rate:.3g}"),
            template_id=decision.template_id,
        )

    async def _record(self, message: DecisionMessage, sighting: _Sighting) -> DecisionMessage:
        """Keep the decision: a match with its evidence, anything else as a bare row (no face)."""
        evidence = None
        if message.result == "match" and message.person_id is not None:
            look = _evidence_look(sighting, message.person_id)
            if look is not None:
                evidence = Evidence(look.picture, look.box, look.embedding, self.gallery.spec.name, look.face)
        try:
            record = self.records.add(
                event_id=message.event_id,
                camera=message.camera,
                result=message.result,
                attempts=message.attempts,
                person_id=message.person_id,
                list_id=message.list_id,
                score=message.score,
                margin=message.margin,
                false_match_rate=message.false_match_rate,
                template_id=message.template_id,
                review_state=message.review_state,
                evidence=evidence,
            )
        except (FaceWatchlistError, OSError, sqlite3.Error) as err:
            # the decision still goes out: an alert must not wait for a full disk
            self.counters["record_errors"] += 1
            LOG.error("could not record the decision for %s: %s", message.event_id, err)
            return message
        return message.recorded(record.id, record.has_evidence)

    # outputs ---------------------------------------------------------------------------------

    async def _publish(self, message: DecisionMessage) -> None:
        self.counters[f"published_{message.result}"] += 1
        self.cameras.add(message.camera)
        LOG.info(
            "%s %s on %s: %s %s",
            "final" if message.final else "early",
            message.event_id,
            message.camera,
            message.result,
            message.person or "",
        )
        payload = message.payload()
        topics = [(events_topic(), False), (camera_topic(message.camera), True)]
        if message.person_id is not None:
            topics.append((person_topic(message.person_id), True))
        self._notify("decision", message.as_dict())
        await self._send(topics, payload)
        self._status_changed.set()

    async def _send(self, topics: list[tuple[str, bool]], payload: bytes) -> None:
        if self._client is None:
            self.counters["publish_errors"] += 1
            return
        try:
            for topic, retain in topics:
                # a broker that just died must not hold a worker for aiomqtt's default 10 s
                await self._client.publish(topic, payload, qos=1, retain=retain, timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as err:
            self.counters["publish_errors"] += 1
            LOG.warning("could not publish on %s: %s", topics[0][0], err)

    async def publish_status(self) -> None:
        await self._send([(status_topic(), True)], dumps(self.status()))

    async def _status_loop(self) -> None:
        """The retained status: after changes at most once a second (counting reviews and
        matches is a few queries: not for every decision of a burst), and every minute anyway."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_changed.wait(), STATUS_EVERY_S)
            self._status_changed.clear()
            if self._client is not None:
                await self.publish_status()
            if self.queue.empty() and self._handled > self._handled_at_trim:
                # quiet again after work: hand the burst's freed memory back (glibc keeps it)
                self._handled_at_trim = self._handled
                await asyncio.to_thread(memory.trim)
            await asyncio.sleep(STATUS_MIN_GAP_S)

    def add_listener(self, listener: Listener) -> None:
        """Called on the event loop with ("decision" | "review", message dict): the web UI's push."""
        self._listeners.append(listener)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """For outputs: one message, QoS 1; False when the broker is away."""
        before = self.counters["publish_errors"]
        await self._send([(topic, retain)], payload)
        return self.counters["publish_errors"] == before

    def _notify(self, kind: str, data: dict[str, Any]) -> None:
        for output in self.outputs:
            try:
                output.notify(kind, data)
            except Exception:  # an output must not stop the decisions
                self.counters[f"output_errors_{output.name}"] += 1
                LOG.exception("output %s failed on a %s", output.name, kind)
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:  # a broken listener must not stop the decisions
                LOG.exception("a %s listener failed", kind)

    async def review(self, decision_id: int, action: ReviewAction, reviewer: str) -> DecisionRecord:
        """A reviewer's verdict on a match: recorded, published, and (reject) fed to the gallery."""
        record = self.records.review(decision_id, action, reviewer)
        payload = {
            "decision_id": record.id,
            "event_id": record.event_id,
            "camera": record.camera,
            "person": record.person,
            "person_id": record.person_id,
            "list": record.list,
            "review_state": record.review_state,
            "reviewer": reviewer,
            "timestamp": record.reviewed_at,
        }
        self._notify("review", payload)
        await self._send([(reviews_topic(), False)], dumps(payload))
        self._status_changed.set()
        return record

    def status(self) -> dict[str, Any]:
        """What health checks, the HTTP API and the status topic report."""
        frigate = {None: "unknown", True: "up", False: "down"}[self.frigate_up]
        store = self.gallery.store
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        return {
            "instance_id": store.instance_id(),
            "version": __version__,
            "pack": self.settings.pipeline.pack,
            "mqtt": "connected" if self._client is not None else "disconnected",
            "frigate": frigate,
            "frigate_api": self._frigate.state if self._frigate else "unknown",
            "queue_depth": self.queue.qsize(),
            "queue_size": self.settings.watch["queue_size"],
            "tracked_objects": len(self.sightings),
            "cameras": sorted(self.cameras),
            "pending_reviews": self.records.pending_count(),
            "matches_today": self.records.matches_since(midnight.timestamp()),
            "people_per_list": store.people_per_list(),
            "counters": dict(self.counters),
            # each output's own tallies (written, retried, failed...): a failing output shows here
            "outputs": {o.name: dict(getattr(o, "stats", {})) for o in self.outputs},
        }

    # the loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        mqtt, frigate = self.settings.mqtt, self.settings.frigate
        async with aiohttp.ClientSession() as http:
            self._frigate = FrigateClient(
                http,
                frigate["url"],
                frigate["username"],
                frigate["password"],
                # "Frigate unreachable" (or refusing our login) shows in the retained status at once
                on_state=lambda _: self._status_changed.set(),
            )
            # two workers: one fetches from Frigate while the other runs the models
            workers = [asyncio.create_task(self.worker()) for _ in range(WORKERS)]
            stopper = asyncio.create_task(stop.wait())
            workers.append(asyncio.create_task(self._status_loop()))
            workers.append(asyncio.create_task(self._purge_loop()))
            workers += [asyncio.create_task(self._run_output(output)) for output in self.outputs]
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

    async def _purge_loop(self) -> None:
        """The retention schedule, applied at start and every `purge_every_hours`."""
        while True:
            try:
                counts = purge(self.records, self.settings.retention)
                if any(counts.values()):
                    LOG.info("retention purge: %s", counts)
            except (FaceWatchlistError, OSError, sqlite3.Error) as err:
                self.counters["purge_errors"] += 1
                LOG.error("retention purge failed: %s", err)
            await asyncio.sleep(self.settings.retention["purge_every_hours"] * 3600)

    async def _run_output(self, output: Output) -> None:
        while True:  # a crashed output loop restarts: the service outlives its outputs' bugs
            try:
                await output.run(self)
                return
            except Exception:
                self.counters[f"output_errors_{output.name}"] += 1
                LOG.exception("output %s stopped; restarting it in 5 s", output.name)
                await asyncio.sleep(5)

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
            topics = [f"{prefix}/events", f"{prefix}/available", *self._output_topics()]
            await client.subscribe([(topic, 1) for topic in topics])
            await client.publish(available_topic(), b"online", qos=1, retain=True)
            self._status_changed.set()  # the status on (re)connect
            for output in self.outputs:
                try:
                    await output.connected(self)
                except Exception:
                    self.counters[f"output_errors_{output.name}"] += 1
                    LOG.exception("output %s failed after connecting", output.name)
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

    def _output_topics(self) -> list[str]:
        return list(dict.fromkeys(topic for output in self.outputs for topic in output.topics))

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            topic = str(message.topic)
            listeners = [output for output in self.outputs if topic in output.topics]
            for output in listeners:  # several outputs may follow one topic (the integration's marker)
                try:
                    output.message(topic, payload)
                except Exception:
                    self.counters[f"output_errors_{output.name}"] += 1
                    LOG.exception("output %s failed on a message", output.name)
            if not listeners:
                self.on_message(topic, payload)


def _top(candidates: Candidates) -> float:
    return candidates.ranked[0].score if candidates.ranked else -1.0


def _evidence_look(sighting: _Sighting, person_id: int) -> _Look | None:
    """The face that looked most like the matched person."""
    best, best_score = None, -2.0
    for candidates, look in zip(sighting.found, sighting.looks, strict=True):
        for scored in candidates.ranked:
            if scored.person_id == person_id and scored.score > best_score:
                best, best_score = look, scored.score
    return best


def person_crop(image: np.ndarray, box: _Box) -> np.ndarray:
    """The person's box (padded) out of a frame, enlarged when small so the detector sees the face."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    pad_x, pad_y = PERSON_PAD * (x2 - x1), PERSON_PAD * (y2 - y1)
    left, top = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
    right, bottom = min(int(x2 + pad_x), w), min(int(y2 + pad_y), h)
    if right - left < 8 or bottom - top < 8:
        raise ImageError("the person's box lies outside the frame")
    crop = image[top:bottom, left:right]
    if crop.shape[0] < 480:  # YuNet finds 16-24 px faces poorly; twice the size costs little
        crop = cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop)


def open_service(settings: Settings) -> tuple[Service, Store]:
    """Models and gallery for `run` (slow: call from a thread or before the loop starts)."""
    pipeline = FacePipeline.load(settings.model_dir, settings.pipeline)
    store = Store(settings.data_dir, cipher=settings.cipher())
    try:
        service = Service(settings, pipeline, Gallery(store, get_pack(settings.pipeline.pack)))
        service.outputs = build_outputs(
            settings, lambda decision_id: service.records.evidence(decision_id, "face")
        )
        return service, store
    except FaceWatchlistError:
        store.close()
        raise
