"""Face detectors behind one small interface: an image in, Detections out."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from insightface.model_zoo.scrfd import SCRFD

from face_watchlist.faces import runtime
from face_watchlist.faces.types import Detection


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...


class YuNetDetector:
    """YuNet through OpenCV's FaceDetectorYN (insightface's model zoo cannot load YuNet).

    Runs at the image's own resolution up to `max_side`, because small faces are the hard case.
    """

    DEFAULT_THRESHOLD = 0.6

    def __init__(self, model: Path, score_threshold: float = DEFAULT_THRESHOLD, max_side: int = 1920) -> None:
        # OpenCV 5 warns on every load that its new graph engine ignores the (default) target.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score_threshold, 0.3, 5000)
        self._size = (320, 320)
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            image = cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
            height, width = image.shape[:2]
        if self._size != (width, height):
            self._net.setInputSize((width, height))
            self._size = (width, height)
        _, found = self._net.detect(image)
        if found is None:
            return []
        # coordinates back to the caller's resolution; the score (last column) stays
        rows = np.asarray(found, np.float32) / np.array([scale] * 14 + [1.0], np.float32)
        return [
            Detection(
                box=(float(r[0]), float(r[1]), float(r[0] + r[2]), float(r[1] + r[3])),
                landmarks=r[4:14].reshape(5, 2).astype(np.float32),
                score=float(r[14]),
            )
            for r in rows
        ]


class ScrfdDetector:
    """SCRFD through insightface's model class on an onnxruntime session (fixed 640x640 input)."""

    DEFAULT_THRESHOLD = 0.5

    def __init__(self, model: Path, threads: int, score_threshold: float = DEFAULT_THRESHOLD) -> None:
        self._net = SCRFD(str(model), session=runtime.session(model, threads))
        self._net.prepare(-1, input_size=(640, 640), det_thresh=score_threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, landmarks = self._net.detect(image, input_size=(640, 640))
        if landmarks is None:
            return []
        return [
            Detection(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                landmarks=np.asarray(k, dtype=np.float32),
                score=float(b[4]),
            )
            for b, k in zip(boxes, landmarks, strict=True)
        ]
