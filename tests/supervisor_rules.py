"""The Supervisor's rules for an add-on's config.yaml and options, for the keys this add-on uses.

Written from the Supervisor's documented behaviour (the Supervisor itself cannot run here): which
keys exist and their types, the schema type language, and how options are checked against the
schema (nested blocks are required, a missing value is allowed only for types ending in `?`, no
nulls). Unknown keys are errors here (the Supervisor drops them silently: a typo would be lost).
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

ARCHES = ("aarch64", "amd64")  # the architectures still built for
STARTUP = ("initialize", "system", "services", "application", "once")
SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
MAP = re.compile(
    r"^(data|config|ssl|addons|backup|share|media|homeassistant_config|all_addon_configs|addon_config)"
    r"(?::(rw|ro))?$"
)
SERVICE = re.compile(r"^(mqtt|mysql):(provide|want|need)$")
ELEMENT = re.compile(
    r"^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d.]+)?,(?P<f_max>[\d.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)


def _schema_element(value: Any) -> Any:
    if isinstance(value, str):
        if not ELEMENT.match(value):
            raise vol.Invalid(f"unknown schema type {value!r}")
        return value
    if isinstance(value, list):
        if len(value) != 1 or isinstance(value[0], list):
            raise vol.Invalid("a list type holds exactly one element type, never a list")
        return [_schema_element(value[0])]
    if isinstance(value, dict):
        return {str(k): _schema_element(v) for k, v in value.items()}
    raise vol.Invalid(f"not a schema type: {value!r}")


def _version(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("version must be a non-empty string (quote it in YAML)")
    return value


CONFIG = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Required("version"): _version,
        vol.Required("slug"): vol.Match(SLUG),
        vol.Required("description"): str,
        vol.Required("arch"): vol.All([vol.In(ARCHES)], vol.Length(min=1)),
        vol.Optional("url"): vol.Url(),
        vol.Optional("init"): bool,
        vol.Optional("startup"): vol.In(STARTUP),
        vol.Optional("boot"): vol.In(("auto", "manual", "manual_only")),
        vol.Optional("services"): [vol.Match(SERVICE)],
        vol.Optional("homeassistant_api"): bool,
        vol.Optional("discovery"): [str],
        vol.Optional("ingress"): bool,
        vol.Optional("ingress_port"): vol.All(int, vol.Range(min=0, max=65535)),
        vol.Optional("panel_icon"): vol.Match(r"^mdi:[a-z0-9-]+$"),
        vol.Optional("panel_title"): str,
        vol.Optional("map"): [vol.Match(MAP)],
        vol.Optional("timeout"): vol.All(int, vol.Range(min=10, max=300)),
        vol.Optional("options"): dict,
        vol.Optional("schema"): vol.Any(False, vol.Schema({str: _schema_element})),
        vol.Optional("image"): str,
    }
)


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """config.yaml as the Supervisor reads it; then its own options must pass its own schema."""
    checked: dict[str, Any] = CONFIG(config)
    if checked.get("schema"):
        check_options(checked.get("options", {}), checked["schema"])
    return checked


def check_options(options: Any, schema: dict[str, Any], where: str = "root") -> dict[str, Any]:
    """What the Supervisor does to options.json before the add-on starts (returns what it keeps)."""
    if not isinstance(options, dict):
        raise vol.Invalid(f"{where}: expected a mapping")
    kept = {key: _value(schema[key], value, key) for key, value in options.items() if key in schema}
    for key in set(schema) - set(kept):
        typ = schema[key][0] if isinstance(schema[key], list) and schema[key] else schema[key]
        if not (isinstance(typ, str) and typ.endswith("?")):
            raise vol.Invalid(f"missing option {key!r} in {where}")
    return kept


def _value(typ: Any, value: Any, key: str) -> Any:
    if isinstance(typ, list):
        if not isinstance(value, list):
            raise vol.Invalid(f"{key}: expected a list")
        return [_value(typ[0], v, key) for v in value]
    if isinstance(typ, dict):
        return check_options(value, typ, key)
    return _single(typ, value, key)


def _single(typ: str, value: Any, key: str) -> Any:
    if value is None:
        raise vol.Invalid(f"missing required option {key!r} (null)")
    match = ELEMENT.match(typ)
    if not match:
        raise vol.Invalid(f"{key}: unknown type {typ!r}")
    bounds = {
        name[2:]: float(match.group(name))
        for name in ("i_min", "i_max", "f_min", "f_max")
        if match.group(name) is not None
    }
    base = typ.rstrip("?").split("(")[0]
    checks: dict[str, Any] = {
        "str": str,
        "password": str,
        "int": vol.All(vol.Coerce(int), vol.Range(**bounds)),
        "float": vol.All(vol.Coerce(float), vol.Range(**bounds)),
        "bool": vol.Boolean(),
        "url": vol.Url(),
        "port": vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
    }
    if base == "match":
        return vol.Match(match.group("match"))(str(value))
    if base == "list":
        return vol.In(match.group("list").split("|"))(str(value))
    if base not in checks:
        raise vol.Invalid(f"{key}: type {typ!r} is not checked here")
    return vol.Schema(checks[base])(value)
