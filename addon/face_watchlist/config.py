"""One voluptuous schema for every option; the CLI, the add-on and the tests all validate with it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml
from voluptuous.humanize import humanize_error

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.images import DEFAULT_MAX_PIXELS
from face_watchlist.faces.packs import DEFAULT_PACK, PACKS
from face_watchlist.faces.pipeline import PipelineOptions
from face_watchlist.faces.quality import QualityGate
from face_watchlist.trust.crypto import Cipher, CryptoError, parse_key

DATA_DIR_ENV = "FACE_WATCHLIST_DATA_DIR"


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".local/share/face-watchlist")


def _fraction(low: float, high: float) -> vol.All:
    return vol.All(vol.Coerce(float), vol.Range(min=low, max=high))


_GATE = QualityGate()

FACES_SCHEMA = vol.Schema(
    {
        vol.Optional("pack", default=DEFAULT_PACK): vol.In(sorted(PACKS)),
        vol.Optional("model_dir", default=None): vol.Any(None, str),
        vol.Optional("threads", default=2): vol.All(int, vol.Range(min=1, max=64)),
        vol.Optional("det_threshold", default=None): vol.Any(None, _fraction(0.05, 0.99)),
        vol.Optional("max_pixels", default=DEFAULT_MAX_PIXELS): vol.All(int, vol.Range(min=1)),
        vol.Optional("min_face_px", default=_GATE.min_face_px): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("min_sharpness", default=_GATE.min_sharpness): vol.All(
            vol.Coerce(float), vol.Range(min=0)
        ),
        vol.Optional("min_frontalness", default=_GATE.min_frontalness): _fraction(0.0, 1.0),
        vol.Optional("min_det_score", default=_GATE.min_det_score): _fraction(0.0, 1.0),
    }
)

_PORT = vol.All(int, vol.Range(min=1, max=65535))


def _key(value: object) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected a string")
    try:
        parse_key(value)
    except CryptoError as err:
        raise vol.Invalid(str(err)) from None
    return value


_NAMES = vol.All([vol.All(str, vol.Length(min=1, max=200))], vol.Length(max=200))

MQTT_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=1883): _PORT,
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
        vol.Optional("client_id", default="face_watchlist"): vol.All(str, vol.Length(min=1, max=64)),
    }
)

FRIGATE_SCHEMA = vol.Schema(
    {
        vol.Optional("url", default="http://127.0.0.1:5000"): vol.Url(),
        vol.Optional("topic_prefix", default="frigate"): vol.All(str, vol.Match(r"^[^#+]+$")),
        vol.Optional("username", default=None): vol.Any(None, str),
        vol.Optional("password", default=None): vol.Any(None, str),
        vol.Optional("write_sub_label", default=False): bool,
        # match: on every match; confirmed: once people may act on it (an immediate list's alert,
        # or a review_first match after a reviewer confirmed it)
        vol.Optional("sub_label_when", default="confirmed"): vol.In(["confirmed", "match"]),
        # replace a sub_label that Frigate's own face recognition or a person wrote
        vol.Optional("sub_label_overwrite", default=False): bool,
    }
)

# what goes to Home Assistant: MQTT discovery (while the custom integration is not set up) and
# Core events through its REST API
OUTPUTS_SCHEMA = vol.Schema(
    {
        vol.Optional("discovery", default=True): bool,
        vol.Optional("discovery_prefix", default="homeassistant"): vol.All(str, vol.Match(r"^[^#+]+$")),
        vol.Optional("ha_events", default=True): bool,
        # where evidence links in HA events point (the service's HTTP address); empty: API paths
        vol.Optional("evidence_base_url", default=None): vol.Any(None, vol.Url()),
    }
)

# Home Assistant Core's REST API; the add-on sets both (the Supervisor's proxy and its token)
HOMEASSISTANT_SCHEMA = vol.Schema(
    {
        vol.Optional("url", default=None): vol.Any(None, vol.Url()),
        vol.Optional("token", default=None): vol.Any(None, vol.All(str, vol.Length(min=1))),
    }
)

WATCH_SCHEMA = vol.Schema(
    {
        vol.Optional("cameras", default=[]): _NAMES,  # empty: every camera
        vol.Optional("zones", default=[]): _NAMES,  # empty: anywhere
        vol.Optional("labels", default=["person"]): _NAMES,
        vol.Optional("attempts", default=5): vol.All(int, vol.Range(min=1, max=50)),
        vol.Optional("snapshot_height", default=None): vol.Any(None, vol.All(int, vol.Range(min=64))),
        # no usable face in the snapshot: look around the person in the current full frame
        vol.Optional("latest_frame", default=True): bool,
        # `camera=px`: a camera's own minimum face height (a far gate camera may need less)
        vol.Optional("camera_min_face_px", default=[]): vol.All(
            [vol.All(str, vol.Match(r"^[^=]{1,200}=\d{1,4}$"))], vol.Length(max=200)
        ),
        vol.Optional("queue_size", default=32): vol.All(int, vol.Range(min=1, max=10_000)),
    }
)

# the add-on's ingress port; a token is needed for anything but health unless behind ingress
WEB_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=8099): vol.Any(0, _PORT),  # 0: no HTTP server
        vol.Optional("token", default=None): vol.Any(None, vol.All(str, vol.Length(min=16))),
    }
)

# Encryption at rest, off by default: a key kept beside the data protects nothing, so it must
# come from the add-on's options or another secret store (see docs/responsible-use.md).
# The command line reads it from $FACE_WATCHLIST_ENCRYPTION_KEY.
KEY_ENV = "FACE_WATCHLIST_ENCRYPTION_KEY"
SECURITY_SCHEMA = vol.Schema(
    {vol.Optional("encryption_key", default=lambda: os.environ.get(KEY_ENV) or None): vol.Any(None, _key)}
)

# How long each kind of data is kept (docs/responsible-use.md publishes this as a schedule).
# Faces that match nobody are never stored, so they have no entry here.
RETENTION_SCHEMA = vol.Schema(
    {
        # a match's face crop, snapshot and probe embedding, once reviewed (or an immediate alert)
        vol.Optional("evidence_days", default=30): vol.All(vol.Coerce(float), vol.Range(min=0.01, max=3650)),
        # ... and while still waiting for a reviewer
        vol.Optional("pending_days", default=30): vol.All(vol.Coerce(float), vol.Range(min=0.01, max=3650)),
        # decision rows (camera, time, result, person; no face) once their evidence is gone
        vol.Optional("decisions_days", default=365): vol.All(vol.Coerce(float), vol.Range(min=1, max=36500)),
        vol.Optional("purge_every_hours", default=6): vol.All(vol.Coerce(float), vol.Range(min=0.1, max=168)),
    }
)

SCHEMA = vol.Schema(
    {
        vol.Optional("data_dir", default=default_data_dir): str,
        vol.Optional("faces", default={}): FACES_SCHEMA,
        vol.Optional("mqtt", default={}): MQTT_SCHEMA,
        vol.Optional("frigate", default={}): FRIGATE_SCHEMA,
        vol.Optional("watch", default={}): WATCH_SCHEMA,
        vol.Optional("web", default={}): WEB_SCHEMA,
        vol.Optional("security", default={}): SECURITY_SCHEMA,
        vol.Optional("outputs", default={}): OUTPUTS_SCHEMA,
        vol.Optional("homeassistant", default={}): HOMEASSISTANT_SCHEMA,
        vol.Optional("retention", default={}): RETENTION_SCHEMA,
    }
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    model_dir: Path
    pipeline: PipelineOptions
    gate: QualityGate
    max_pixels: int
    mqtt: dict[str, Any] = field(default_factory=lambda: MQTT_SCHEMA({}))
    frigate: dict[str, Any] = field(default_factory=lambda: FRIGATE_SCHEMA({}))
    watch: dict[str, Any] = field(default_factory=lambda: WATCH_SCHEMA({}))
    web: dict[str, Any] = field(default_factory=lambda: WEB_SCHEMA({}))
    security: dict[str, Any] = field(default_factory=lambda: SECURITY_SCHEMA({}))
    outputs: dict[str, Any] = field(default_factory=lambda: OUTPUTS_SCHEMA({}))
    homeassistant: dict[str, Any] = field(default_factory=lambda: HOMEASSISTANT_SCHEMA({}))
    retention: dict[str, Any] = field(default_factory=lambda: RETENTION_SCHEMA({}))

    def gate_for(self, camera: str) -> QualityGate:
        """The quality gate for a camera: the common one, with the camera's own face size if set."""
        for entry in self.watch["camera_min_face_px"]:
            name, _, px = entry.rpartition("=")
            if name == camera:
                return replace(self.gate, min_face_px=float(px))
        return self.gate

    def cipher(self) -> Cipher | None:
        key = self.security.get("encryption_key")
        return Cipher(key) if key else None


_SECRET_WORDS = ("password", "token", "secret", "key")


def _describe(raw: dict[str, Any], err: vol.Invalid) -> str:
    """The error with the offending value, except a secret's: configuration errors reach logs."""
    errors = err.errors if isinstance(err, vol.MultipleInvalid) else [err]
    return "; ".join(
        str(e) if any(w in str(p).lower() for p in e.path for w in _SECRET_WORDS) else humanize_error(raw, e)
        for e in errors
    )


def load_settings(raw: dict[str, Any]) -> Settings:
    """Validate raw options; the error names the offending key."""
    try:
        conf = SCHEMA(raw)
    except vol.Invalid as err:
        raise FaceWatchlistError(f"invalid configuration: {_describe(raw, err)}") from None
    faces = conf["faces"]
    data_dir = Path(conf["data_dir"]).expanduser()
    return Settings(
        data_dir=data_dir,
        model_dir=Path(faces["model_dir"]).expanduser() if faces["model_dir"] else data_dir / "models",
        pipeline=PipelineOptions(faces["pack"], faces["threads"], faces["det_threshold"]),
        gate=QualityGate(
            faces["min_face_px"], faces["min_sharpness"], faces["min_frontalness"], faces["min_det_score"]
        ),
        max_pixels=faces["max_pixels"],
        mqtt=conf["mqtt"],
        frigate=conf["frigate"],
        watch=conf["watch"],
        web=conf["web"],
        security=conf["security"],
        outputs=conf["outputs"],
        homeassistant=conf["homeassistant"],
        retention=conf["retention"],
    )


def read_config(path: Path) -> dict[str, Any]:
    """A YAML or JSON configuration file (the add-on's options.json is the same thing)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise FaceWatchlistError(f"{path}: cannot read the configuration ({err.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, ValueError) as err:
        raise FaceWatchlistError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'} ({err})"
        ) from None
    if not isinstance(data, dict):
        raise FaceWatchlistError(f"{path}: the configuration must be a mapping of options")
    return data
