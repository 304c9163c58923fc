"""Shared fixtures: the test data directory, the model directory and the two offline pipelines.

Models are loaded once per session. A missing model pack is a failure, not a skip: the tests on
real photos are the point of the suite, so a machine without models must not pass silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from face_watchlist.demo import free_port
from face_watchlist.faces.cache import ModelCache
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline, PipelineOptions

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# scripts/setup installs the packs under <repo>/.data; a bare `pytest` finds them there too.
os.environ.setdefault("FACE_WATCHLIST_DATA_DIR", str(REPO / ".data"))


def _require_pack(model_dir: Path, name: str) -> None:
    cache = ModelCache(model_dir)
    problems = [f"{s.file.name}: {s.state}" for s in cache.status(PACKS[name]) if s.state != "installed"]
    if problems:
        pytest.fail(
            f"model pack {name!r} is not installed in {model_dir} ({'; '.join(problems)}); "
            "run scripts/setup (it installs the offline packs into $FACE_WATCHLIST_DATA_DIR/models)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: the licence-clean photo sets copied from ../shared/data (see its README.md)."""
    return TESTS / "data"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """$FACE_WATCHLIST_DATA_DIR/models (default <repo>/.data/models), with opencv-zoo installed."""
    path = Path(os.environ["FACE_WATCHLIST_DATA_DIR"]) / "models"
    _require_pack(path, "opencv-zoo")
    return path


@pytest.fixture(scope="session")
def pipeline(model_dir: Path) -> FacePipeline:
    """The default pack: YuNet + SFace."""
    return FacePipeline.load(model_dir, PipelineOptions(pack="opencv-zoo"))


@pytest.fixture(scope="session")
def scrfd_pipeline(model_dir: Path) -> FacePipeline:
    """SCRFD-2.5G + SFace."""
    _require_pack(model_dir, "scrfd-sface")
    return FacePipeline.load(model_dir, PipelineOptions(pack="scrfd-sface"))


def pytest_configure(config: pytest.Config) -> None:
    # face_watchlist.faces.align silences this at import, but pytest restores the warning filters
    # after each test, so the filter would only hold for the test that first imported it.
    config.addinivalue_line("filterwarnings", "ignore:`estimate` is deprecated:FutureWarning")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto on a free port (the design's integration tests use a real broker)."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:  # scripts/setup installs it; a missing broker is a broken set-up
        pytest.fail("mosquitto is not installed: run scripts/setup", pytrace=False)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)
