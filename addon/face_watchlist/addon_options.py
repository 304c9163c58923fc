"""The add-on's `options` and `schema` (addon/config.yaml), derived from the service's voluptuous schema.

config.py is the one source of truth. The Supervisor's schema language is smaller (no nulls, no
alternatives, unsigned ranges), so each voluptuous validator is translated here, and anything it
cannot express is an error naming the key: extend the translation, or list the key in
ADDON_OVERRIDES / MANAGED with the reason. The Supervisor's schema may be looser than the service's
(string lengths), never stricter: the service validates again at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import voluptuous as vol
import yaml

from face_watchlist.config import SCHEMA
from face_watchlist.errors import FaceWatchlistError

Element = str | list[Any] | dict[str, Any]

OMIT: Final = object()  # no entry in the add-on's default options (the key is optional there)

# Set by the add-on itself, never by the user: state lives under /data, the HTTP server listens on
# the ingress port, the API token is generated once and handed to the integration by discovery.
# Home Assistant's API is the Supervisor's proxy, authorised by the add-on's SUPERVISOR_TOKEN.
MANAGED: Final = frozenset(
    {
        "data_dir",
        "faces.model_dir",
        "web.host",
        "web.port",
        "web.token",
        "homeassistant.url",
        "homeassistant.token",
    }
)

# Keys whose add-on form differs from the service's on purpose: (type, default or OMIT).
ADDON_OVERRIDES: Final[dict[str, tuple[str, object]]] = {
    # empty: the broker the Supervisor hands over (Mosquitto add-on), with its credentials
    "mqtt.host": ("str?", OMIT),
    "mqtt.port": ("port?", OMIT),
    # the Frigate add-on's hostname inside Home Assistant's network (repository hash + slug)
    "frigate.url": ("url", "http://ccab4aaf-frigate:5000"),
    # off unless set: a 44-character key (`face-watchlist` validates its form at start-up)
    "security.encryption_key": ("password?", OMIT),
}

SECRET_NAMES: Final = frozenset({"password", "token"})  # shown as password fields in the UI

MARKER = (
    "# ---- generated from face_watchlist/config.py: `face-watchlist addon schema --write`; do not edit below"
)


class AddonSchemaError(FaceWatchlistError):
    """The voluptuous schema has something the Supervisor's schema language cannot say."""


def derive(schema: vol.Schema = SCHEMA) -> tuple[dict[str, Any], dict[str, Any]]:
    """The add-on's default `options` and its `schema`, from the service's schema."""
    options, types = _mapping(schema.schema, "")
    return options, types


def _mapping(mapping: dict[Any, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    options: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for key, validator in mapping.items():
        name = str(key.schema if isinstance(key, vol.Marker) else key)
        path = f"{prefix}{name}"
        if path in MANAGED:
            continue
        factory = _default_factory(key)
        default = factory() if factory else OMIT
        inner = validator.schema if isinstance(validator, vol.Schema) else validator
        if isinstance(inner, dict):
            sub_options, sub_types = _mapping(inner, f"{path}.")
            if sub_types:  # a block made only of managed keys is not shown
                options[name], types[name] = sub_options, sub_types
            continue
        typ: Element
        if path in ADDON_OVERRIDES:
            typ, default = ADDON_OVERRIDES[path]
        else:
            element, nullable = _element(validator, path)
            if nullable and default is None:
                default = OMIT
            typ = _finish(element, name, optional=default is OMIT)
        types[name] = typ
        if default is not OMIT:
            options[name] = default
    return options, types


def _default_factory(key: Any) -> Callable[[], Any] | None:
    """voluptuous keeps a default as a factory (vol.UNDEFINED: none)."""
    factory: Any = key.default if isinstance(key, vol.Optional) else vol.UNDEFINED
    return None if factory is vol.UNDEFINED else cast("Callable[[], Any]", factory)


def _finish(element: Element, name: str, optional: bool) -> Element:
    if isinstance(element, list):
        return [_finish(element[0], name, optional)]
    if isinstance(element, str):
        if name in SECRET_NAMES and element == "str":
            element = "password"
        return element + "?" if optional else element
    raise AddonSchemaError(f"{name}: nested options inside a value are not supported")


def _element(validator: Any, path: str) -> tuple[Element, bool]:
    """The Supervisor type of one validator, and whether the service also accepts null."""
    simple = {str: "str", int: "int", float: "float", bool: "bool"}
    if isinstance(validator, type) and validator in simple:
        return simple[validator], False
    if isinstance(validator, vol.Coerce) and validator.type in (int, float):
        return simple[validator.type], False
    if isinstance(validator, vol.In):
        container: Any = validator.container
        choices = [str(c) for c in container]
        if any("|" in c for c in choices):
            raise AddonSchemaError(f"{path}: a choice contains '|'")
        return f"list({'|'.join(choices)})", False
    if isinstance(validator, vol.Match):
        return f"match({validator.pattern.pattern})", False
    if callable(validator) and getattr(validator, "__name__", "") == "Url":
        return "url", False
    if isinstance(validator, list) and len(validator) == 1:
        element, _ = _element(validator[0], path)
        if isinstance(element, list):
            raise AddonSchemaError(f"{path}: the Supervisor has no list of lists")
        return [element], False
    if isinstance(validator, vol.Any):
        rest = [v for v in validator.validators if v is not None]
        if len(rest) == 1 and len(validator.validators) == 2:
            return _element(rest[0], path)[0], True
    if isinstance(validator, vol.All):
        return _all(validator, path), False
    raise AddonSchemaError(
        f"{path}: the add-on schema cannot express {validator!r}; "
        "teach face_watchlist/addon_options.py or add the key to ADDON_OVERRIDES"
    )


def _all(validator: vol.All, path: str) -> Element:
    """vol.All(type, constraints...): the type, with a Range as the Supervisor's (min,max)."""
    bases = [v for v in validator.validators if not isinstance(v, vol.Range | vol.Length)]
    if len(bases) == 2 and bases[0] is str and isinstance(bases[1], vol.Match):
        bases = bases[1:]  # a pattern implies a string
    if len(bases) != 1:
        raise AddonSchemaError(f"{path}: cannot express {validator!r} in the add-on schema")
    element, _ = _element(bases[0], path)
    ranges = [v for v in validator.validators if isinstance(v, vol.Range)]
    if not ranges:
        return element  # lengths are the service's check: the Supervisor's str(min,max) is not one
    if len(ranges) > 1 or element not in ("int", "float"):
        raise AddonSchemaError(f"{path}: a range on {element} cannot be expressed")
    bound: Any = ranges[0]
    if not (bound.min_included and bound.max_included):
        raise AddonSchemaError(f"{path}: the Supervisor's ranges are inclusive")
    text = ",".join(_number(b, element, path) for b in (bound.min, bound.max))
    return f"{element}({text})"


def _number(value: float | None, element: str, path: str) -> str:
    if value is None:
        return ""
    if value < 0:
        raise AddonSchemaError(f"{path}: the Supervisor's ranges cannot be negative")
    return str(int(value)) if element == "int" else repr(float(value))


# config.yaml ------------------------------------------------------------------------------------


def generated_block(schema: vol.Schema = SCHEMA) -> str:
    options, types = derive(schema)
    body = yaml.safe_dump({"options": options, "schema": types}, sort_keys=False, width=1000)
    return f"{MARKER}\n{body}"


def write_config(path: Path, schema: vol.Schema = SCHEMA) -> bool:
    """Rewrite the generated part of config.yaml; True when it changed."""
    text = path.read_text()
    head, marker, _ = text.partition(MARKER)
    if not marker:
        raise AddonSchemaError(f"{path}: the marker line is missing:\n{MARKER}")
    new = head + generated_block(schema)
    if new == text:
        return False
    path.write_text(new)
    return True


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: key-by-key comparisons and error messages."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def service_keys(schema: vol.Schema = SCHEMA) -> dict[str, Callable[[], Any] | None]:
    """Every leaf key of the voluptuous schema with its default factory (None: no default)."""
    keys: dict[str, Callable[[], Any] | None] = {}

    def walk(mapping: dict[Any, Any], prefix: str) -> None:
        for key, validator in mapping.items():
            name = f"{prefix}{key.schema if isinstance(key, vol.Marker) else key}"
            inner = validator.schema if isinstance(validator, vol.Schema) else validator
            if isinstance(inner, dict):
                walk(inner, f"{name}.")
            else:
                keys[name] = _default_factory(key)

    walk(schema.schema, "")
    return keys
