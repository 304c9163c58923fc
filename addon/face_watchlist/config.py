"""One voluptuous schema for every option; the CLI, the add-on and the tests all validate with it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol
from voluptuous.humanize import humanize_error

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.images import DEFAULT_MAX_PIXELS
from face_watchlist.faces.packs import DEFAULT_PACK, PACKS
from face_watchlist.faces.pipeline import PipelineOptions
from face_watchlist.faces.quality import QualityGate

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

SCHEMA = vol.Schema(
    {
        vol.Optional("data_dir", default=default_data_dir): str,
        vol.Optional("faces", default={}): FACES_SCHEMA,
    }
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    model_dir: Path
    pipeline: PipelineOptions
    gate: QualityGate
    max_pixels: int


def load_settings(raw: dict[str, Any]) -> Settings:
    """Validate raw options; the error names the offending key."""
    try:
        conf = SCHEMA(raw)
    except vol.Invalid as err:
        raise FaceWatchlistError(f"invalid configuration: {humanize_error(raw, err)}") from None
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
    )
