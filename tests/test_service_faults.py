"""The service under faults, on a real Mosquitto and the Frigate simulator: the broker dies and
comes back, Frigate fails and stalls, a burst overflows the queue, many objects come and go."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import cv2
import numpy as np
import pytest

from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import (
    available_message,
    event_messages,
    publish_lifecycle,
)
from service_rig import rig

DATA = Path(__file__).parent / "data" / "faces"
OBAMA = (DATA / "face_recognition_knn" / "probe" / "obama1.jpg").read_bytes()
BOX = (390, 40, 890, 700)
Decision = dict[str, Any]


def grey_photo() -> bytes:
    return bytes(cv2.imencode(".jpg", np.full((480, 360, 3), 128, np.uint8))[1].tobytes())


# --- a broker that can die and come back on the same port, with its sessions ------------------


class Mosquitto:
    """One Mosquitto on a fixed port, persisting sessions and queued messages on every change."""

    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary, self.port = binary, port
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\npersistence_file mosquitto.db\n"
            "autosave_on_changes true\nautosave_interval 1\n"  # saved on every change: SIGKILL-safe
            # stay who runs the tests: as root, Mosquitto would become `mosquitto`, who cannot
            # write in tmp_path (a non-root user is never switched, whatever this says)
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        self.db = workdir / "mosquitto.db"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail("mosquitto did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """Dies at once: no clean shutdown, no Will for anyone, only what is on disk survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.fail("mosquitto is not installed: run scripts/setup", pytrace=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Mosquitto(binary, workdir, port)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --- the service, the simulator and a watcher ---------------------------------------------------


@contextlib.asynccontextmanager
async def clients(port: int, *, await_service: bool = True) -> AsyncIterator[tuple[aiomqtt.Client, Watcher]]:
    """A Frigate publisher and a watcher of the service's topics; by default, once the service is
    online (it says so after subscribing, so nothing published after this is missed)."""
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="frigate") as frigate,
        aiomqtt.Client("127.0.0.1", port, identifier="watcher") as client,
    ):
        watcher = Watcher(client)
        await client.subscribe("face_watchlist/#", qos=1)
        if await_service:
            await watcher.online(timeout=10, live_only=False)
        await frigate.publish(*available_message("online"), qos=1)
        yield frigate, watcher


class Watcher:
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.decisions: list[Decision] = []

    async def _until(self, found: Callable[[aiomqtt.Message], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async for message in self.client.messages:
                if message.topic.value == "face_watchlist/events" and isinstance(message.payload, bytes):
                    self.decisions.append(json.loads(message.payload))
                if found(message):
                    return

    async def online(self, timeout: float, *, live_only: bool = True) -> None:
        """Until the service publishes `online`; `live_only`: not the retained copy of an old one."""

        def found(m: aiomqtt.Message) -> bool:
            return (
                m.topic.value == "face_watchlist/available"
                and m.payload == b"online"
                and not (live_only and m.retain)
            )

        await self._until(found, timeout)

    async def settled(self, event_ids: set[str], timeout: float = 20) -> dict[str, Decision]:
        """Until each object has its last word: a final decision, or an early match (after which
        the service only speaks again if the final decision differs)."""

        def last_words() -> dict[str, Decision]:
            return {
                d["event_id"]: d
                for d in self.decisions
                if d["event_id"] in event_ids and (d["final"] or d["result"] == "match")
            }

        if len(last_words()) < len(event_ids):
            await self._until(lambda _: len(last_words()) == len(event_ids), timeout)
        return last_words()


async def eventually(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- the tests ------------------------------------------------------------------------------------


async def test_broker_killed_and_restarted(
    tmp_path: Path, restartable_broker: Mosquitto, pipeline: FacePipeline, model_dir: Path
) -> None:
    broker = restartable_broker
    async with rig(tmp_path, broker.port, pipeline, model_dir) as r:
        async with clients(broker.port) as (frigate, watcher):
            event = r.sim.add_event("1.0-before", "front_door", OBAMA, box=BOX)
            await publish_lifecycle(frigate, "frigate", event, updates=0)
            assert (await watcher.settled({"1.0-before"}))["1.0-before"]["person"] == "obama"
            # its `end` handled too, so no publish is in flight when the broker dies (aiomqtt would
            # wait 10 s for the PUBACK of one lost with the connection, holding up that worker)
            assert await eventually(lambda: len(r.service.sightings) == 0)
        # the service's session and subscriptions are on disk (saved on every change)
        assert await eventually(broker.db.exists)

        broker.kill()
        # down long enough that the service's first retry (after 1 s) fails and it waits 2 s more
        await asyncio.sleep(1.5)
        broker.start()
        restarted = time.monotonic()
        async with clients(broker.port, await_service=False) as (frigate, watcher):
            # published while the service is still away: the broker keeps it for its session
            queued = r.sim.add_event("2.0-while-away", "front_door", OBAMA, box=BOX)
            await publish_lifecycle(frigate, "frigate", queued, updates=0)
            published = time.monotonic()
            await watcher.online(timeout=10)
            back = time.monotonic()
            assert back - restarted < 5, f"reconnected {back - restarted:.1f} s after the broker came back"
            assert published < back, "the service was back before the queued event: nothing was queued"
            after = r.sim.add_event("3.0-after", "front_door", OBAMA, box=BOX)
            await publish_lifecycle(frigate, "frigate", after, updates=0)
            got = await watcher.settled({"2.0-while-away", "3.0-after"})
        assert got["2.0-while-away"]["result"] == "match"
        assert got["3.0-after"]["person"] == "obama"
        assert r.service.counters["published_match"] == 3


async def test_frigate_flapping_and_stalling(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with rig(tmp_path, broker, pipeline, model_dir) as r, clients(broker) as (frigate, watcher):
        sim, service = r.sim, r.service
        # down: every snapshot request answers 500; the object ends without a face seen
        sim.inject("error", "snapshot")
        down = sim.add_event("1.0-down", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", down, updates=1)
        decision = (await watcher.settled({"1.0-down"}))["1.0-down"]
        assert (decision["result"], decision["attempts"], decision["faces_seen"]) == ("no_face", 2, 0)
        assert service.counters["frigate_errors"] == 2

        # flapping: three more 500s (one attempt and its two retries), then Frigate recovers by
        # itself; the next snapshot of the same object decides
        sim.clear_faults()
        sim.inject("error", "snapshot", times=3)
        flap = sim.add_event("2.0-flap", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", flap, updates=1)
        decision = (await watcher.settled({"2.0-flap"}))["2.0-flap"]
        assert (decision["result"], decision["person"], decision["attempts"]) == ("match", "obama", 2)
        assert service.counters["frigate_errors"] == 3

        # stalling: one answer slower than the client's 5 s timeout; the retry gets the picture
        sim.inject("delay", "snapshot", delay=6.0, times=1)
        slow = sim.add_event("3.0-slow", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", slow, updates=0)
        decision = (await watcher.settled({"3.0-slow"}, timeout=20))["3.0-slow"]
        assert decision["person"] == "obama"
        assert decision["timing_ms"]["fetch_ms"] > 5000  # the timeout, then the retry
        assert service.counters["frigate_errors"] == 3

        # and afterwards all is well again
        fine = sim.add_event("4.0-fine", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", fine, updates=0)
        assert (await watcher.settled({"4.0-fine"}))["4.0-fine"]["person"] == "obama"
        assert not r.task.done()


async def test_a_burst_overflows_the_bounded_queue(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with (
        rig(tmp_path, broker, pipeline, model_dir, queue_size=2) as r,
        clients(broker) as (frigate, watcher),
    ):
        service, sim = r.service, r.sim
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, service.queue.qsize())
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        burst = [sim.add_event(f"1.{n}-burst", "front_door", grey_photo(), box=BOX) for n in range(40)]
        for event in burst:
            await frigate.publish(*event_messages(event, "new"), qos=1)
        assert await eventually(lambda: service.counters["dropped_queue_full"] > 0)
        assert await eventually(lambda: service.queue.qsize() == 0, timeout=20)
        sampler.cancel()
        assert 0 < peak <= 2

        later = sim.add_event("2.0-later", "front_door", OBAMA, box=BOX)
        await publish_lifecycle(frigate, "frigate", later, updates=0)
        assert (await watcher.settled({"2.0-later"}))["2.0-later"]["person"] == "obama"

        # the burst's objects end one by one: each gets its final decision, nothing stays behind
        for event in burst:
            event.end_time = event.frame_time + 1
            await frigate.publish(*event_messages(event, "end"), qos=1)
            await watcher.settled({event.id})
        assert await eventually(lambda: len(service.tracker) == 0 and len(service.sightings) == 0)


async def test_many_objects_leave_no_bookkeeping_behind(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with (
        rig(tmp_path, broker, pipeline, model_dir, queue_size=500) as r,
        clients(broker) as (frigate, watcher),
    ):
        service, sim = r.service, r.sim
        ids: set[str] = set()
        for n in range(30):
            photo = OBAMA if n % 3 == 0 else grey_photo()
            event = sim.add_event(f"{n}.0-many", "front_door", photo, box=BOX)
            await publish_lifecycle(frigate, "frigate", event, updates=1)
            ids.add(event.id)
        got = await watcher.settled(ids, timeout=40)
        assert sum(d["result"] == "match" for d in got.values()) == 10
        assert sum(d["result"] == "no_face" for d in got.values()) == 20
        assert await eventually(lambda: len(service.tracker) == 0 and len(service.sightings) == 0)
        assert service.counters["dropped_queue_full"] == 0
        assert service.counters["errors"] == 0


async def test_a_full_queue_does_not_lose_final_decisions(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path
) -> None:
    async with (
        rig(tmp_path, broker, pipeline, model_dir, queue_size=2) as r,
        clients(broker) as (frigate, _),
    ):
        service, sim = r.service, r.sim
        people = [sim.add_event(f"{n}.0-seen", "front_door", grey_photo(), box=BOX) for n in range(10)]
        for n, event in enumerate(people, start=1):  # one by one: every first look is taken
            await frigate.publish(*event_messages(event, "new"), qos=1)
            async with asyncio.timeout(5):
                while sim.requests["snapshot"] < n:
                    await asyncio.sleep(0.02)
        await asyncio.wait_for(service.queue.join(), 10)
        assert service.counters["dropped_queue_full"] == 0
        for event in people:  # they all leave at once, each with a better snapshot to look at
            event.move_snapshot()
            event.end_time = event.frame_time + 1
            await frigate.publish(*event_messages(event, "end"), qos=1)
        assert await eventually(lambda: len(service.tracker) == 0)
        assert await eventually(lambda: service.counters["published_no_face"] == len(people), timeout=3)
        assert await eventually(lambda: len(service.sightings) == 0)
