"""The Frigate HTTP client against the simulator: login and token refresh, the internal port,
retries and the reported state when Frigate fails, and the routes we use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from face_watchlist.errors import ImageError
from face_watchlist.faces.images import decode_image
from face_watchlist.frigate.client import (
    FrigateAuthError,
    FrigateClient,
    FrigateError,
    FrigateNotFound,
    FrigateUnavailable,
    State,
)
from face_watchlist.frigate.simulator import FrigateSimulator

PHOTO = (
    Path(__file__).parent / "data" / "faces" / "face_recognition_knn" / "probe" / "obama1.jpg"
).read_bytes()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[FrigateSimulator]:
    simulator = FrigateSimulator(auth=True, clock=Clock())
    simulator.add_event("1.0-abc", "front_door", PHOTO)
    await simulator.start()
    yield simulator
    await simulator.stop()


def client(sim: FrigateSimulator, http: aiohttp.ClientSession, **kwargs: object) -> FrigateClient:
    options: dict[str, object] = {
        "username": sim_user(sim),
        "password": "frigate-sim-password",
        "backoff_s": 0.01,
    }
    options.update(kwargs)
    return FrigateClient(http, sim.base_url, **options)  # type: ignore[arg-type]


def sim_user(sim: FrigateSimulator) -> str:
    return "admin"


async def test_snapshot_with_login(sim: FrigateSimulator, http: aiohttp.ClientSession) -> None:
    states: list[State] = []
    frigate = client(sim, http, on_state=states.append)
    image = decode_image(await frigate.snapshot("1.0-abc", height=300, crop=True))
    assert image.shape[0] == 300
    assert sim.requests["login"] == 1
    assert frigate.state == "ok" and states == ["ok"]  # noqa: PT018
    await frigate.snapshot("1.0-abc")
    assert sim.requests["login"] == 1  # the token is reused


async def test_an_expired_token_is_refreshed(sim: FrigateSimulator, http: aiohttp.ClientSession) -> None:
    frigate = client(sim, http)
    await frigate.snapshot("1.0-abc")
    assert isinstance(sim.clock, Clock)
    sim.clock.now += 3600  # past the token's lifetime
    await frigate.snapshot("1.0-abc")
    assert sim.requests["login"] == 2


async def test_wrong_password_is_an_auth_error(sim: FrigateSimulator, http: aiohttp.ClientSession) -> None:
    frigate = client(sim, http, password="wrong")
    with pytest.raises(FrigateAuthError, match="refused the login"):
        await frigate.snapshot("1.0-abc")
    assert frigate.state == "unauthorized"


async def test_the_internal_port_needs_no_credentials(http: aiohttp.ClientSession) -> None:
    async with FrigateSimulator(auth=False) as sim:
        sim.add_event("2.0-x", "front_door", PHOTO)
        frigate = FrigateClient(http, sim.base_url)
        assert (await frigate.snapshot("2.0-x"))[:2] == b"\xff\xd8"
        assert sim.requests["login"] == 0


async def test_server_errors_are_retried_then_reported(
    sim: FrigateSimulator, http: aiohttp.ClientSession
) -> None:
    frigate = client(sim, http, retries=2)
    sim.inject("error", "snapshot", times=2)  # two failures, then Frigate recovers
    assert (await frigate.snapshot("1.0-abc"))[:2] == b"\xff\xd8"
    sim.inject("error", "snapshot")
    with pytest.raises(FrigateUnavailable, match="unreachable"):
        await frigate.snapshot("1.0-abc")
    assert frigate.state == "unreachable"
    sim.clear_faults()
    await frigate.snapshot("1.0-abc")
    assert frigate.state == "ok"


async def test_timeouts_and_resets_are_unavailable(
    sim: FrigateSimulator, http: aiohttp.ClientSession
) -> None:
    frigate = client(sim, http, timeout_s=0.3, retries=1)
    await frigate.config()  # logged in
    sim.inject("delay", "snapshot", delay=2.0)
    with pytest.raises(FrigateUnavailable, match="TimeoutError"):
        await frigate.snapshot("1.0-abc")
    sim.clear_faults()
    sim.inject("reset", "snapshot")
    with pytest.raises(FrigateUnavailable):
        await frigate.snapshot("1.0-abc")


async def test_a_truncated_jpeg_reaches_the_decoder_which_refuses_it(
    sim: FrigateSimulator, http: aiohttp.ClientSession
) -> None:
    sim.inject("truncate", "snapshot")
    data = await client(sim, http).snapshot("1.0-abc")
    with pytest.raises(ImageError, match="truncated"):
        decode_image(data)


async def test_unknown_events_and_suspicious_ids(sim: FrigateSimulator, http: aiohttp.ClientSession) -> None:
    frigate = client(sim, http)
    with pytest.raises(FrigateNotFound):
        await frigate.snapshot("9.9-nope")
    for bad in ("../config", "a/b", "x?y", "", ".."):
        with pytest.raises(FrigateError, match="suspicious"):
            await frigate.snapshot(bad)


async def test_latest_frame_config_and_sub_label(sim: FrigateSimulator, http: aiohttp.ClientSession) -> None:
    frigate = client(sim, http)
    frame = cv2.imdecode(np.frombuffer(await frigate.latest_frame("front_door"), np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape[:2] == (720, 1280)
    config = await frigate.config()
    assert "front_door" in config["cameras"]
    await frigate.set_sub_label("1.0-abc", "Jane Doe", 0.87)
    (write,) = sim.sub_label_writes
    assert (write.event_id, write.sub_label, write.score) == ("1.0-abc", "Jane Doe", 0.87)
    with pytest.raises(ValueError, match="score"):
        await frigate.set_sub_label("1.0-abc", "Jane Doe", 1.5)


async def test_nothing_listening_is_unavailable(http: aiohttp.ClientSession) -> None:
    frigate = FrigateClient(http, "http://127.0.0.1:9", retries=1, backoff_s=0.01)
    with pytest.raises(FrigateUnavailable):
        await frigate.config()
    assert frigate.state == "unreachable"


async def test_an_oversized_answer_is_refused(
    sim: FrigateSimulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    import face_watchlist.frigate.client as module

    monkeypatch.setattr(module, "MAX_IMAGE_BYTES", 10_000)
    with pytest.raises(FrigateError, match="over 10000 bytes"):
        await client(sim, http).latest_frame("front_door")
