"""The whole flow with one command, on embedded defaults: Frigate events in, decisions out.

`run_demo` starts a private Mosquitto on a free port, the Frigate simulator (authenticated port
behaviour) on another, enrols a sample person on the watch list "visitors" in a temporary data
directory, runs the service in-process against both, and replays three tracked people as Frigate
would publish them: the enrolled person, a stranger and a person whose face cannot be seen. Each
decision the service publishes on `face_watchlist/events` is printed as one line as it arrives.

The sample photos are the repository's licence-clean test photos (`tests/data`), found next to
the package in a source checkout; the add-on image does not ship them and does not run the demo,
so their absence is a clear error, not a fallback. The broker is Mosquitto (`scripts/setup`
installs it); an embedded Python broker is out of scope for now, so without Mosquitto the demo
stops with an error saying so. Everything it starts (broker process, simulator, service, temp
directory) is stopped and removed on success, timeout, error and Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import cv2
import numpy as np

from face_watchlist.config import Settings, load_settings
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.pipeline import FacePipeline, get_pack
from face_watchlist.frigate.simulator import FrigateSimulator, available_message, publish_lifecycle
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.outputs.messages import available_topic, events_topic
from face_watchlist.service import Service

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
KNN = Path("faces") / "face_recognition_knn"
ENROL = KNN / "enroll" / "obama"
ENROLLED_PROBE = KNN / "probe" / "obama1.jpg"
STRANGER = Path("faces") / "dlib_johns" / "images" / "John_Simm" / "001.jpg"
PERSON, WATCH_LIST, CAMERA = "obama", "visitors", "front_door"
BOX = (390, 40, 890, 700)  # the person's box in the 1280x720 frame: most of its height
SIM_PASSWORD = "frigate-sim-password"
Out = Callable[[str], None]


def find_mosquitto() -> str:
    """The Mosquitto binary, or an error saying how to get it."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise FaceWatchlistError(
            "the demo needs the Mosquitto MQTT broker, which is not installed: run scripts/setup "
            "(an embedded broker is not provided)"
        )
    return binary


def demo_data(root: Path = DATA) -> Path:
    """The repository's `tests/data`, or an error: the demo runs from a source checkout only."""
    needed = [root / ENROL, root / ENROLLED_PROBE, root / STRANGER]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FaceWatchlistError(
            f"the demo's sample photos are missing ({', '.join(missing)}): run it from a source "
            "checkout of face-watchlist (the add-on image does not include them)"
        )
    return root


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def mosquitto(workdir: Path, startup_s: float = 5.0) -> AsyncIterator[int]:
    """A private Mosquitto on a free loopback port; yields the port, stops the broker after."""
    binary = find_mosquitto()
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = workdir / "mosquitto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # own session: a Ctrl-C reaches us, we stop the broker last
            [binary, "-c", str(conf)], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + startup_s
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise FaceWatchlistError(f"Mosquitto did not start on port {port}: {detail[0]}")
            await asyncio.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def faceless_photo(data: Path) -> bytes:
    """A person whose face cannot be seen: the stranger's photo blurred past recognition."""
    image = cv2.imread(str(data / STRANGER))
    if image is None:
        raise FaceWatchlistError(f"{data / STRANGER}: not a readable image")
    blurred = cv2.GaussianBlur(image, (0, 0), max(image.shape[:2]) / 6)
    ok, encoded = cv2.imencode(".jpg", np.asarray(blurred, np.uint8))
    if not ok:
        raise FaceWatchlistError("could not encode the faceless sample photo")
    return bytes(encoded.tobytes())


@dataclass(frozen=True)
class Person:
    tag: str  # the event id's suffix
    what: str
    photo: bytes


def sample_people(data: Path) -> list[Person]:
    return [
        Person("enrolled", f"{PERSON}, enrolled on {WATCH_LIST!r}", (data / ENROLLED_PROBE).read_bytes()),
        Person("stranger", "a stranger", (data / STRANGER).read_bytes()),
        Person("noface", "a person whose face is not visible", faceless_photo(data)),
    ]


def describe(decision: dict[str, Any]) -> str:
    """One readable line for a decision message."""

    def show(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    total = (decision.get("timing_ms") or {}).get("total_ms")
    total_ms = f"{total:.0f}" if isinstance(total, int | float) else "-"
    return (
        f"decision  camera={show(decision.get('camera'))}  result={show(decision.get('result'))}  "
        f"person={show(decision.get('person'))}  list={show(decision.get('list'))}  "
        f"score={show(decision.get('score'))}  review={show(decision.get('review_state'))}  "
        f"total={total_ms} ms  ({'final' if decision.get('final') else 'early'}, "
        f"event {decision.get('event_id')})"
    )


def _settles(decision: dict[str, Any]) -> bool:
    """The service's last word on an object: its final message, or an early match (after a
    match the object is settled and the final decision is only sent when it differs)."""
    return bool(decision.get("final")) or decision.get("result") == "match"


def _enrol(gallery: Gallery, pipeline: FacePipeline, settings: Settings, data: Path, out: Out) -> None:
    watch_list = gallery.store.create_list(WATCH_LIST)
    photos = sorted(p for p in (data / ENROL).iterdir() if p.is_file())
    jobs = enroll.file_jobs(photos, PERSON, None, None)
    summary = enroll.Enroller(gallery, pipeline, settings.gate, "demo").run(jobs, watch_list)
    if summary.counts()["enrolled"] == 0:
        reasons = "; ".join(f"{o.source}: {o.reason}" for o in summary.outcomes)
        raise FaceWatchlistError(f"the demo could not enrol {PERSON} ({reasons})")
    out(f"enrolled {PERSON} on the watch list {WATCH_LIST!r} from {len(photos)} photo(s)")


@contextlib.asynccontextmanager
async def _running(service: Service) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):  # after 15 s wait_for cancels it
            await asyncio.wait_for(task, 15)


@contextlib.contextmanager
def _temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="face-watchlist-demo-") as name:
        yield Path(name)


async def _wait_online(watcher: aiomqtt.Client, service: asyncio.Task[None], timeout: float) -> None:
    """Until the service says `online` (it subscribes to Frigate's topics before saying so)."""

    async def online() -> None:
        async for message in watcher.messages:
            if message.topic.value == available_topic() and message.payload == b"online":
                return

    waiter = asyncio.ensure_future(online())
    try:
        done, _ = await asyncio.wait({waiter, service}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if service in done:
        service.result()  # re-raise what stopped it
        raise FaceWatchlistError("the service stopped before it came online")
    if waiter not in done:
        raise FaceWatchlistError(f"the service did not come online within {timeout:.0f} s")


async def run_demo(
    model_dir: Path,
    once: bool,
    out: Callable[[str], None] = print,
    *,
    timeout: float = 60.0,
    interval: float = 5.0,
) -> int:
    """Run the demo; `once`: one replay of the three people, 0 when their decisions arrived.

    Without `once` the three people are replayed every `interval` seconds until cancelled
    (Ctrl-C). A set-up problem (no Mosquitto, no sample photos, no models) raises
    FaceWatchlistError; decisions missing after `timeout` seconds print why and return 1.
    """
    data = demo_data()
    find_mosquitto()  # every set-up problem shows before anything starts
    options = load_settings({"faces": {"model_dir": str(model_dir)}})
    out(f"loading the {options.pipeline.pack} models from {model_dir} ...")
    pipeline = await asyncio.to_thread(FacePipeline.load, options.model_dir, options.pipeline)
    async with contextlib.AsyncExitStack() as stack:
        workdir = stack.enter_context(_temp_dir())
        port = await stack.enter_async_context(mosquitto(workdir))
        sim = await stack.enter_async_context(FrigateSimulator(auth=True, password=SIM_PASSWORD))
        settings = load_settings(
            {
                "data_dir": str(workdir / "data"),
                "faces": {"model_dir": str(model_dir)},
                "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "face_watchlist_demo"},
                "frigate": {"url": sim.base_url, "username": "admin", "password": SIM_PASSWORD},
                "web": {"port": 0},
            }
        )
        out(f"broker: Mosquitto on 127.0.0.1:{port}; Frigate simulator: {sim.base_url}")
        store = Store(settings.data_dir)
        stack.callback(store.close)
        gallery = Gallery(store, get_pack(settings.pipeline.pack))
        _enrol(gallery, pipeline, settings, data, out)
        people = sample_people(data)

        service = Service(settings, pipeline, gallery)
        watcher = await stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", port, identifier="demo-watcher")
        )
        await watcher.subscribe([(events_topic(), 1), (available_topic(), 1)])
        frigate = await stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", port, identifier="demo-frigate")
        )
        task = await stack.enter_async_context(_running(service))
        await _wait_online(watcher, task, timeout=min(timeout, 15.0))
        await frigate.publish(*available_message("online"), qos=1, retain=True)

        async def replay_round() -> set[str]:
            ids: set[str] = set()
            stamp = time.time()
            for person in people:
                event_id = f"{stamp:.6f}-{person.tag}"
                ids.add(event_id)
                out(f"replaying {person.what} (event {event_id})")
                event = sim.add_event(event_id, CAMERA, person.photo, box=BOX)
                await publish_lifecycle(frigate, settings.frigate["topic_prefix"], event, updates=1)
            return ids

        async def replay_forever() -> None:
            while True:
                await asyncio.sleep(interval)
                await replay_round()
                # forget what Frigate would have expired: the simulator keeps only recent events
                for old in list(sim.events)[: -3 * len(people)]:
                    del sim.events[old]

        pending = await replay_round()
        replayer = None if once else asyncio.create_task(replay_forever())
        try:
            async with asyncio.timeout(timeout if once else None):
                async for message in watcher.messages:
                    if message.topic.value != events_topic() or not isinstance(message.payload, bytes):
                        continue
                    decision = json.loads(message.payload)
                    out(describe(decision))
                    if _settles(decision):
                        pending.discard(str(decision.get("event_id")))
                    if (once and not pending) or task.done():
                        break
        except TimeoutError:
            pass
        finally:
            if replayer is not None:
                replayer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replayer
        if task.done():
            problem = "cancelled" if task.cancelled() else task.exception() or "no error"
            out(f"demo: the service stopped unexpectedly ({problem})")
            return 1
        if pending:
            out(
                f"demo: timed out after {timeout:g} s waiting for {len(pending)} of {len(people)} "
                f"decisions ({', '.join(sorted(pending))}); service counters: {dict(service.counters)}"
            )
            return 1
        out(f"demo: all {len(people)} decisions arrived; stopping")
        return 0
    return 1  # unreachable: mypy cannot see that the exit stack does not swallow exceptions
