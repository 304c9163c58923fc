"""The add-on image without Docker: Debian trixie debootstrapped, then the Dockerfile's two stages
run through addon/install.sh in chroots, the venv copied from the build stage into the final one.

The result is cached under /var/cache/face-watchlist/trixie-<hash of what it installs>, so only a
change to install.sh or the requirements rebuilds it (several minutes); the package's own code is
copied in by each test run, as the Dockerfile's COPY would. Mounts are always undone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "addon"
CACHE = Path(os.environ.get("FACE_WATCHLIST_CACHE", "/var/cache/face-watchlist"))
MIRROR = os.environ.get("FACE_WATCHLIST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "trixie"
VENV = Path("opt/face-watchlist")
SITE = VENV / "lib/python3.13/site-packages"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
INPUTS = ("install.sh", "requirements.txt", "requirements.lock", "requirements-nodeps.txt")
RECIPE = "2"  # bump when build_rootfs changes what it makes
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_key() -> str:
    digest = hashlib.sha256(SUITE.encode())
    for name in INPUTS:
        digest.update((ADDON / name).read_bytes())
    digest.update(RECIPE.encode())
    return digest.hexdigest()[:16]


def _run(command: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-30:]
        raise RuntimeError(f"{command[0]} failed ({result.returncode}); end of {log}:\n" + "\n".join(tail))


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc and /dev inside the chroot for as long as the block runs; unmounted whatever happens."""
    done: list[Path] = []
    try:
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
            point = root / target
            point.mkdir(exist_ok=True)
            subprocess.run(["mount", *args, str(point)], check=True)
            done.append(point)
        yield
    finally:
        for point in reversed(done):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], check=False)


@contextlib.contextmanager
def overlay(lower: Path, work: Path) -> Iterator[Path]:
    """A throw-away writable copy of the cached rootfs (the cache itself is never written)."""
    upper, scratch, merged = work / "upper", work / "work", work / "root"
    for d in (upper, scratch, merged):
        d.mkdir(parents=True)
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={scratch}",
            str(merged),
        ],
        check=True,
    )
    try:
        yield merged
    finally:
        if subprocess.run(["umount", str(merged)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(merged)], check=False)


def chroot_command(root: Path, *command: str, env: dict[str, str] | None = None) -> list[str]:
    """chroot with a clean environment: nothing of the host's pip or Python set-up leaks in."""
    variables = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
    return ["chroot", str(root), "env", "-i", *(f"{k}={v}" for k, v in variables.items()), *command]


def _network(root: Path) -> dict[str, str]:
    """Name resolution and, where this machine reaches PyPI through a TLS-inspecting proxy, its CA
    bundle (pip in the chroot trusts SSL_CERT_FILE; install.sh itself stays as in the Dockerfile)."""
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    if HOST_CA.exists():
        shutil.copyfile(HOST_CA, root / "etc/host-ca.crt")
        return {"SSL_CERT_FILE": "/etc/host-ca.crt"}
    return {}


SLIM_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")


def _slim(root: Path) -> None:
    """The add-on's base image is built on Debian's slim image, which installs no documentation,
    manual pages or translations: the same here, so the measured size is the image's."""
    (root / "etc/dpkg/dpkg.cfg.d/slim").write_text("".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES))
    for pattern in SLIM_EXCLUDES:
        for path in root.glob(pattern.lstrip("/")):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def build_rootfs(dest: Path, log: Path) -> None:
    work = dest.with_name(f".{dest.name}.{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        runtime, build = work / "runtime", work / "build"
        _run(["debootstrap", "--variant=minbase", SUITE, str(runtime), MIRROR], log)
        _slim(runtime)
        _run(["cp", "-a", str(runtime), str(build)], log)
        # stage "build": compilers, wheels, the venv
        (build / "build").mkdir()
        for name in INPUTS:
            shutil.copyfile(ADDON / name, build / "build" / name)
        shutil.copytree(ADDON / "face_watchlist", build / "build/face_watchlist")
        env = _network(build)
        with mounted(build):
            _run(chroot_command(build, "sh", "/build/install.sh", "build", "/build", env=env), log)
        # final stage: the interpreter, then COPY --from=build the venv, COPY rootfs /
        env = _network(runtime)
        shutil.copyfile(ADDON / "install.sh", runtime / "tmp/install.sh")
        with mounted(runtime):
            _run(chroot_command(runtime, "sh", "/tmp/install.sh", "runtime", env=env), log)
        (runtime / "tmp/install.sh").unlink()
        (runtime / "etc/host-ca.crt").unlink(missing_ok=True)
        _run(["cp", "-a", str(build / VENV), str(runtime / VENV.parent)], log)
        shutil.rmtree(build)
        os.rename(runtime, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cached_rootfs(log: Path) -> Path:
    """The final image's root filesystem, built once per cache key (one builder at a time)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    dest = CACHE / f"{SUITE}-{cache_key()}"
    with (CACHE / f".{SUITE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / SITE / "onnxruntime").is_dir():
            for stale in CACHE.glob(f"{SUITE}-*"):  # made from older install steps
                shutil.rmtree(stale, ignore_errors=True)
            build_rootfs(dest, log)
    return dest


def install_code(root: Path) -> None:
    """What the Dockerfile's COPY lines bring on every build: the package and the rootfs overlay."""
    target = root / SITE / "face_watchlist"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ADDON / "face_watchlist", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ADDON / "rootfs", root, dirs_exist_ok=True)


def size_mb(path: Path) -> float:
    out = subprocess.run(
        ["du", "-sx", "--block-size=1", str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[0]) / 1e6
