"""The add-on's files: config.yaml under the Supervisor's rules, its options and schema in step with
the service's voluptuous schema, and the files the store and the image build need."""

from __future__ import annotations

import base64
import copy
import re
import struct
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml

from face_watchlist import __version__
from face_watchlist.addon_options import (
    ADDON_OVERRIDES,
    MANAGED,
    MARKER,
    OMIT,
    AddonSchemaError,
    derive,
    flatten,
    service_keys,
    write_config,
)
from face_watchlist.config import SCHEMA, WEB_SCHEMA
from face_watchlist.supervisor import DEFAULT_INGRESS_PORT, DISCOVERY_SERVICE
from supervisor_rules import check_config, check_options

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "addon"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ADDON / "config.yaml").read_text())
    return data


# the Supervisor's rules -------------------------------------------------------------------------


def test_config_yaml_passes_the_supervisors_rules(config: dict[str, Any]) -> None:
    checked = check_config(copy.deepcopy(config))
    assert checked["slug"] == "face_watchlist"
    assert checked["version"] == __version__
    assert sorted(checked["arch"]) == ["aarch64", "amd64"]
    assert checked["init"] is False
    assert checked["startup"] == "application"
    assert checked["services"] == ["mqtt:need"]
    assert checked["homeassistant_api"] is True
    assert checked["discovery"] == [DISCOVERY_SERVICE]
    assert checked["ingress"] is True
    assert checked["ingress_port"] == DEFAULT_INGRESS_PORT == WEB_SCHEMA({})["port"]
    assert checked["panel_icon"].startswith("mdi:")
    assert "addon_config:rw" in checked["map"]
    assert "image" not in checked, "built locally from addon/Dockerfile"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"arch": ["armhf"]}, "retired architecture"),
        ({"slug": "face watchlist"}, "slug with a space"),
        ({"startup": "after"}, "unknown startup"),
        ({"services": ["mqtt:required"]}, "unknown service right"),
        ({"map": ["data:rx"]}, "bad map"),
        ({"ingres": True}, "typo in a key"),
        ({"version": 1.0}, "unquoted version"),
        ({"schema": {"faces": {"pack": "select(a|b)"}}}, "unknown type"),
        ({"schema": {"watch": {"cameras": [["str"]]}}}, "list of lists"),
    ],
)
def test_the_rules_catch_mistakes(config: dict[str, Any], change: dict[str, Any], why: str) -> None:
    broken = {**copy.deepcopy(config), **change}
    with pytest.raises(vol.Invalid):
        check_config(broken)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"faces": {"threads": 2}}, "a nested block without its required keys"),
        ({"faces": {"pack": "opencv-zoo", "threads": None}}, "a null"),
        ({"faces": {"pack": "buffalo_xl"}}, "not one of the choices"),
        ({"faces": {"threads": 99}}, "out of range"),
        ({"watch": {"cameras": "front"}}, "not a list"),
    ],
)
def test_options_are_checked_against_the_schema(
    config: dict[str, Any], options: dict[str, Any], why: str
) -> None:
    merged = copy.deepcopy(config["options"])
    for block, values in options.items():
        merged[block] = values if why.startswith("a nested") else {**merged[block], **values}
    with pytest.raises(vol.Invalid):
        check_options(merged, config["schema"])


# one source of truth for the options --------------------------------------------------------------


def test_config_yaml_options_and_schema_are_derived_from_the_service_schema(config: dict[str, Any]) -> None:
    options, schema = derive()
    problems = []
    for name, want, have in (("schema", schema, config["schema"]), ("options", options, config["options"])):
        want_flat, have_flat = flatten(want), flatten(have)
        for key in sorted(set(want_flat) | set(have_flat)):
            if want_flat.get(key, "<absent>") != have_flat.get(key, "<absent>"):
                problems.append(
                    f"{name}.{key}: config.py says {want_flat.get(key, '<absent>')!r}, "
                    f"config.yaml has {have_flat.get(key, '<absent>')!r}"
                )
    assert not problems, (
        "addon/config.yaml is out of step with face_watchlist/config.py; run\n"
        "  face-watchlist addon schema --write addon/config.yaml\n" + "\n".join(problems)
    )


def test_every_service_option_is_in_the_addon_or_managed_by_it(config: dict[str, Any]) -> None:
    keys = service_keys()
    shown = flatten(config["schema"])
    assert set(shown) | MANAGED == set(keys), "each service option: in config.yaml's schema or MANAGED"
    assert not set(shown) & MANAGED
    assert set(ADDON_OVERRIDES) <= set(keys), "an override names an option the service no longer has"


def test_addon_defaults_are_the_service_defaults(config: dict[str, Any]) -> None:
    defaults = flatten(config["options"])
    for key, factory in service_keys().items():
        if key in MANAGED:
            continue
        override = ADDON_OVERRIDES.get(key)
        if override is not None:
            if override[1] is not OMIT:
                assert defaults[key] == override[1]
            continue
        service_default = factory() if factory else None
        if service_default is None:
            assert key not in defaults, f"{key}: no default in the service, none in the add-on"
            assert flatten(config["schema"])[key].endswith("?"), f"{key}: must be optional in the add-on"
        else:
            assert defaults[key] == service_default, key


def _service_accepts(key: str, value: Any) -> bool:
    block, _, leaf = key.rpartition(".")
    raw: dict[str, Any] = {leaf: value}
    for part in reversed(block.split(".") if block else []):
        raw = {part: raw}
    try:
        SCHEMA(raw)
    except vol.Invalid:
        return False
    return True


# keys whose add-on type is looser than the service's on purpose (the service checks at start-up)
KEY_SAMPLES: dict[str, tuple[list[Any], list[Any]]] = {
    "security.encryption_key": ([base64.urlsafe_b64encode(bytes(range(32))).decode()], []),
    "watch.camera_min_face_px": (["front gate=24"], ["front gate"]),
}


def _samples(key: str, base: str) -> tuple[list[Any], list[Any]]:
    """Values a Supervisor type lets through (its bounds, its choices) and values just outside."""
    if key in KEY_SAMPLES:
        return KEY_SAMPLES[key]
    if m := re.fullmatch(r"(int|float)\((\d[\d.]*)?,(\d[\d.]*)?\)", base):
        cast, step = (int, 1) if m.group(1) == "int" else (float, 0.01)
        low, high = m.group(2), m.group(3)
        inside = [cast(b) for b in (low, high) if b is not None]
        outside = ([cast(low) - step] if low else []) + ([cast(high) + step] if high else [])
        return inside, outside
    if m := re.fullmatch(r"list\((.+)\)", base):
        return m.group(1).split("|"), ["not-a-choice"]
    fixed: dict[str, tuple[list[Any], list[Any]]] = {
        "str": (["some text"], []),
        "password": (["some text"], []),
        "bool": ([True, False], ["yes please"]),
        "port": ([1, 65535], [0, 65536]),
        "url": (["http://frigate.local:5000"], ["not a url"]),
    }
    if base in fixed:
        return fixed[base]
    if base.startswith("match("):
        return ["frigate"], ["frigate/#"]
    pytest.fail(f"{key}: no samples for type {base!r}")


def test_every_value_the_supervisor_lets_through_is_one_the_service_takes(config: dict[str, Any]) -> None:
    """Key by key: bounds, choices and types agree (the add-on may never accept what the service refuses)."""
    checked = 0
    for key, typ in flatten(config["schema"]).items():
        as_list = isinstance(typ, list)
        inside, outside = _samples(key, (typ[0] if as_list else typ).rstrip("?"))
        for value in inside:
            assert _service_accepts(key, [value] if as_list else value), f"{key}={value!r} ({typ})"
            checked += 1
        for value in outside:
            assert not _service_accepts(key, [value] if as_list else value), f"{key}={value!r} ({typ})"
    assert checked > 20


def test_a_schema_the_addon_cannot_express_is_an_error_naming_the_key() -> None:
    odd = vol.Schema(
        {vol.Optional("outputs", default={}): vol.Schema({vol.Optional("x", default=1): vol.Clamp(min=0)})}
    )
    with pytest.raises(AddonSchemaError, match=r"outputs\.x"):
        derive(odd)
    negative = vol.Schema({vol.Optional("t", default=0): vol.All(int, vol.Range(min=-5, max=5))})
    with pytest.raises(AddonSchemaError, match="negative"):
        derive(negative)


def test_a_new_option_block_is_picked_up(tmp_path: Path) -> None:
    """Engineers add blocks (outputs, retention, ...) to config.py: derive and --write follow."""
    grown = SCHEMA.extend(
        {
            vol.Optional("retention", default={}): vol.Schema(
                {
                    vol.Optional("days", default=30): vol.All(int, vol.Range(min=1, max=3650)),
                    vol.Optional("purge_unknown", default=True): bool,
                }
            )
        }
    )
    options, schema = derive(grown)
    assert schema["retention"] == {"days": "int(1,3650)", "purge_unknown": "bool"}
    assert options["retention"] == {"days": 30, "purge_unknown": True}
    copy_ = tmp_path / "config.yaml"
    copy_.write_text((ADDON / "config.yaml").read_text())
    assert write_config(copy_, grown)
    assert yaml.safe_load(copy_.read_text())["schema"]["retention"]["days"] == "int(1,3650)"
    assert not write_config(copy_, grown), "a second write changes nothing"
    assert copy_.read_text().count(MARKER) == 1


# the other files ----------------------------------------------------------------------------------


def test_repository_yaml() -> None:
    repo = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert set(repo) == {"name", "url", "maintainer"}
    assert repo["url"].startswith("https://github.com/")


def test_config_yaml_is_the_only_one_in_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = [f for f in files if Path(f).name in ("config.yaml", "config.yml", "config.json")]
    assert found == ["addon/config.yaml"], "the Supervisor searches the whole repository for config.yaml"


def test_translations_cover_every_option_block(config: dict[str, Any]) -> None:
    translations = yaml.safe_load((ADDON / "translations/en.yaml").read_text())["configuration"]
    assert set(translations) == set(config["schema"])
    for key, text in translations.items():
        assert text.get("name"), key
        assert text.get("description"), key
    assert "non-commercial" in translations["faces"]["description"]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_store_images() -> None:
    assert _png_size(ADDON / "icon.png") == (128, 128)
    assert _png_size(ADDON / "logo.png") == (250, 100)


def _requirements(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def test_image_requirements_follow_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(_requirements(ADDON / "requirements.txt")) == sorted(project["dependencies"])
    assert _requirements(ADDON / "requirements-nodeps.txt") == _requirements(
        ROOT / "requirements/insightface.txt"
    )


def test_dockerfile_builds_on_debian_trixie_through_install_sh() -> None:
    text = (ADDON / "Dockerfile").read_text()
    assert "ARG BUILD_FROM=ghcr.io/home-assistant/base-debian:trixie" in text
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, flags=re.M)
    assert froms == [("${BUILD_FROM}", "build"), ("${BUILD_FROM}", "")], "a build stage and a slim final one"
    assert "install.sh build /build" in text
    assert "install.sh runtime" in text
    assert "COPY --from=build /opt/face-watchlist /opt/face-watchlist" in text
    assert "COPY rootfs /" in text
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for name in copied.split():
            assert (ADDON / name).exists(), f"the Dockerfile copies {name}, which addon/ lacks"


def test_run_script_and_apparmor() -> None:
    services = ADDON / "rootfs/etc/services.d/face_watchlist"
    for name in ("run", "finish"):
        assert (services / name).stat().st_mode & 0o111, f"{name} must be executable"
    run = (services / "run").read_text()
    assert run.startswith("#!/usr/bin/with-contenv sh\n")
    assert "exec face-watchlist addon run" in run
    assert re.search(r"^profile face_watchlist ", (ADDON / "apparmor.txt").read_text(), flags=re.M)


def test_docs_state_the_licences() -> None:
    docs = (ADDON / "DOCS.md").read_text()
    assert re.search(r"`buffalo_l`.*non-commercial", docs)
    assert "free for any use" in docs.lower()
    assert f"## {__version__}" in (ADDON / "CHANGELOG.md").read_text()
