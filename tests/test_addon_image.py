"""Image rehearsal (slow; CI runs it): the add-on's install steps in a debootstrapped Debian trixie,
then the service started there by its run script, against the fake Supervisor and a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from addon_image import (
    SITE,
    VENV,
    cached_rootfs,
    chroot_command,
    install_code,
    mounted,
    mounts_under,
    overlay,
    size_mb,
)
from addon_rig import (
    SUPERVISOR_TOKEN,
    FakeSupervisor,
    Watcher,
    auth_broker,
    default_options,
    free_port,
    seed_data,
    wait_health,
)

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests/data/faces/face_recognition_knn/enroll/obama/obama.jpg"
FIGURES = ROOT / "build/addon-image.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap, chroot and mount need root (CI runs as root)"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed: run scripts/setup", pytrace=False)
    log = tmp_path_factory.mktemp("image") / "build.log"
    start = time.monotonic()
    path = cached_rootfs(log)
    print(f"\nrootfs {path} ready in {time.monotonic() - start:.0f} s (log: {log})")
    return path


async def test_image_installs_and_the_service_answers_its_health_endpoint(
    rootfs: Path, tmp_path: Path, model_dir: Path
) -> None:
    figures = {"installed_mb": round(size_mb(rootfs), 1), "venv_mb": round(size_mb(rootfs / VENV), 1)}
    with auth_broker(tmp_path) as broker_port:
        supervisor = FakeSupervisor(mqtt_port=broker_port, ingress_port=free_port())
        await supervisor.start()
        try:
            with overlay(rootfs, tmp_path / "image") as root, mounted(root), Watcher(broker_port) as watcher:
                install_code(root)
                seed_data(root / "data", model_dir, default_options())
                env = {"SUPERVISOR_TOKEN": SUPERVISOR_TOKEN, "FACE_WATCHLIST_SUPERVISOR": supervisor.url}
                run = "/etc/services.d/face_watchlist/run"
                proc = subprocess.Popen(
                    chroot_command(root, "sh", run, env=env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                try:
                    figures["ready_s"] = round(await wait_health(supervisor.ingress_port, 300, proc), 1)
                    watcher.wait_for("online", 30)
                    for _ in range(100):
                        if supervisor.discovery:
                            break
                        await asyncio.sleep(0.1)
                    token = (root / "data/api_token").read_text().strip()
                    assert supervisor.discovery[0]["config"]["token"] == token
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
                assert proc.returncode == 0, out
                assert "model pack opencv-zoo verified" in out
                # the image's own Python, not the host's
                version = subprocess.run(
                    chroot_command(root, f"/{VENV}/bin/python", "-c", "import sys; print(sys.version)"),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert version.startswith("3.13"), version
                # the whole face pipeline in the image: decode, detect, align, embed
                shutil.copyfile(PHOTO, root / "tmp/face.jpg")
                embedded = subprocess.run(
                    chroot_command(
                        root,
                        f"/{VENV}/bin/face-watchlist",
                        "--data",
                        "/data",
                        "embed",
                        "/tmp/face.jpg",
                        "--json",
                    ),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert embedded.returncode == 0, embedded.stderr
                assert len(json.loads(embedded.stdout)["faces"][0]["embedding"]) == 128
                assert (
                    not (root / SITE / "cv2/qt").exists()
                    or (root / SITE / "opencv_python_headless.libs").exists()
                )
        finally:
            await supervisor.stop()
    assert not mounts_under(tmp_path), "a mount was left behind"
    FIGURES.parent.mkdir(exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nadd-on image: {figures}")
    assert figures["installed_mb"] < 700, figures
