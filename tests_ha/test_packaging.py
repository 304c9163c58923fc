"""hacs.json and manifest.json against the rules HACS and hassfest apply; translations complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "face_watchlist"
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "render_readme",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
}
MANIFEST_KEYS = {
    "domain",
    "name",
    "after_dependencies",
    "bluetooth",
    "codeowners",
    "config_flow",
    "dependencies",
    "dhcp",
    "documentation",
    "homekit",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "loggers",
    "mqtt",
    "requirements",
    "single_config_entry",
    "ssdp",
    "usb",
    "version",
    "zeroconf",
}
IOT_CLASSES = {"assumed_state", "cloud_polling", "cloud_push", "local_polling", "local_push", "calculated"}
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system", "virtual"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_hacs_json() -> None:
    hacs = load(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS, set(hacs) - HACS_KEYS
    assert isinstance(hacs["name"], str)
    assert hacs["name"]
    assert re.fullmatch(r"20\d\d\.\d{1,2}\.\d+", hacs["homeassistant"])
    # one integration in custom_components/, README at the root (HACS' repository layout)
    assert [
        p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir() and p.name != "__pycache__"
    ] == ["face_watchlist"]
    assert (ROOT / "README.md").is_file()


def test_hacs_minimum_is_the_oldest_tested_release() -> None:
    hacs = load(ROOT / "hacs.json")
    oldest = (ROOT / "requirements" / "ha-oldest.txt").read_text()
    assert "pytest-homeassistant-custom-component==0.13.236" in oldest  # pins homeassistant 2025.4.4
    assert hacs["homeassistant"] == "2025.4.0"


def test_manifest() -> None:
    manifest = load(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:]), "hassfest: keys after domain and name are sorted"
    assert set(keys) <= MANIFEST_KEYS, set(keys) - MANIFEST_KEYS
    assert manifest["domain"] == INTEGRATION.name
    for key in ("documentation", "issue_tracker", "codeowners", "version"):  # HACS requires them
        assert key in manifest
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["documentation"].startswith("https://")
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert manifest["config_flow"] is True
    assert "mqtt" in manifest["dependencies"]
    assert "quality_scale" not in manifest  # not for custom integrations
    assert not (INTEGRATION / "strings.json").exists()  # custom integrations ship translations/en.json


def test_brand_icon() -> None:
    data = (INTEGRATION / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (256, 256)


def test_services_translated_and_iconed() -> None:
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    en = load(INTEGRATION / "translations" / "en.json")
    icons = load(INTEGRATION / "icons.json")
    assert set(services) == set(en["services"]) == set(icons["services"])
    for name, spec in services.items():
        assert set(spec["fields"]) == set(en["services"][name]["fields"]), name
        for field in en["services"][name]["fields"].values():
            assert field["name"]
            assert field["description"]


def test_entities_translated_and_iconed() -> None:
    en = load(INTEGRATION / "translations" / "en.json")
    icons = load(INTEGRATION / "icons.json")
    assert {p: set(v) for p, v in en["entity"].items()} == {p: set(v) for p, v in icons["entity"].items()}
    source = "\n".join(p.read_text() for p in INTEGRATION.glob("*.py"))
    for key in re.findall(r'translation_key="(\w+)"', source):
        assert key in en["exceptions"], key


def test_config_steps_have_data_descriptions() -> None:
    en = load(INTEGRATION / "translations" / "en.json")
    for name, step in {**en["config"]["step"], **en["options"]["step"]}.items():
        assert set(step.get("data", {})) == set(step.get("data_description", {})), name
    # every error and abort the flow can raise has a text
    flow = (INTEGRATION / "config_flow.py").read_text()
    for key in set(re.findall(r'errors\[[^\]]+\] = "(\w+)"', flow)):
        assert key in en["config"]["error"], key
        assert key in en["config"]["abort"], key  # add-on discovery aborts with the same key
    for key in re.findall(r'reason="(\w+)"', flow):
        assert key in en["config"]["abort"], key


def test_quality_scale_tracks_every_rule() -> None:
    scale = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    for rule, status in scale.items():
        if isinstance(status, dict):
            assert status["status"] in {"done", "exempt"}, rule
            if status["status"] == "exempt":
                assert status.get("comment"), f"{rule}: exempt needs a reason"
        else:
            assert status == "done", rule
    for rule in (
        "config-flow",
        "test-before-setup",
        "runtime-data",
        "entity-unique-id",
        "has-entity-name",
        "action-exceptions",
        "parallel-updates",
        "test-coverage",
        "diagnostics",
        "discovery",
        "reconfiguration-flow",
        "reauthentication-flow",
        "strict-typing",
        "inject-websession",
    ):
        assert rule in scale, rule
