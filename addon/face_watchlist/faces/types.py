"""Plain data passed between the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face as found by a detector, in the pixel coordinates of the image it ran on."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32: right eye, left eye, nose, right and left mouth corner
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class Quality:
    """What decides whether a face is worth matching."""

    face_px: float  # height of the detected box, in pixels of the source image
    sharpness: float  # variance of the Laplacian of the aligned 112x112 grey crop
    frontalness: float  # 1 = looking at the camera, 0 = full profile (from the landmarks)
    det_score: float


@dataclass(frozen=True)
class Face:
    """A detected face with its quality and, when asked for, its aligned crop and embedding."""

    detection: Detection
    quality: Quality
    aligned: np.ndarray  # 112x112x3 BGR
    embedding: np.ndarray | None  # L2-normalised float32, None when not embedded


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0
