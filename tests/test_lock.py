"""The pinned, hashed installs: requirements/lock.txt (scripts/setup) and addon/requirements.lock
(the add-on image) pin every dependency pyproject.toml declares, at versions its specifiers allow,
with sha256 hashes, the two at the same versions; and both install scripts install from them with
pip's hash checking on. After a change to pyproject's dependencies, run scripts/lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
ADDON_LOCK = ROOT / "addon" / "requirements.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each `name==version \\ --hash=...` entry."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    found = {}
    for entry in entries:
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s\\;]+)", entry)
        if match:
            found[canonicalize_name(match[1])] = (match[2], entry.count("--hash=sha256:"))
    return found


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        (LOCK, PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"]),
        (ADDON_LOCK, PROJECT["dependencies"]),
    ],
    ids=["service", "addon"],
)
def test_every_dependency_is_pinned_with_hashes(lock: Path, requirements: list[str]) -> None:
    pinned = pins(lock)
    assert pinned, f"{lock} pins nothing"
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in {lock.name}: run scripts/lock"
        version = pinned[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, outside {requirement.specifier}: run scripts/lock"
        )
    assert all(hashes > 0 for _, hashes in pinned.values())


def test_the_image_and_the_service_pin_the_same_versions() -> None:
    service, image = pins(LOCK), pins(ADDON_LOCK)
    assert set(image) <= set(service)
    assert {n: v for n, (v, _) in image.items()} == {n: service[n][0] for n in image}


def test_installs_check_the_hashes() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "--require-hashes -r requirements/lock.txt" in setup
    assert "--no-deps -e ." in setup
    assert "requirements/lock.txt" in setup.split("want=")[1].splitlines()[0]  # a new lock reinstalls
    install = (ROOT / "addon" / "install.sh").read_text()
    assert '--require-hashes -r "$src/requirements.lock"' in install
    assert "requirements.lock" in (ROOT / "addon" / "Dockerfile").read_text()
