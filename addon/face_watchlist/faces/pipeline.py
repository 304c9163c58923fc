"""The face pipeline: detect -> align -> quality -> embed, with models loaded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_watchlist.errors import ModelPackError
from face_watchlist.faces.align import align
from face_watchlist.faces.cache import ModelCache
from face_watchlist.faces.detectors import Detector, ScrfdDetector, YuNetDetector
from face_watchlist.faces.embedder import Embedder
from face_watchlist.faces.packs import PACKS, PackSpec
from face_watchlist.faces.quality import measure
from face_watchlist.faces.types import Detection, Face


@dataclass(frozen=True)
class PipelineOptions:
    pack: str = "opencv-zoo"
    threads: int = 2
    det_threshold: float | None = None  # None: the detector's own default


class FacePipeline:
    def __init__(self, spec: PackSpec, detector: Detector, embedder: Embedder) -> None:
        self.spec = spec
        self.detector = detector
        self.embedder = embedder

    @classmethod
    def load(cls, model_dir: Path, options: PipelineOptions = PipelineOptions()) -> FacePipeline:
        spec = get_pack(options.pack)
        detector_path, recogniser_path = ModelCache(model_dir).require(spec)
        cv2.setNumThreads(options.threads)
        detector: Detector
        threshold = options.det_threshold
        if spec.detector_kind == "yunet":
            detector = YuNetDetector(detector_path, threshold or YuNetDetector.DEFAULT_THRESHOLD)
        else:
            detector = ScrfdDetector(
                detector_path, options.threads, threshold or ScrfdDetector.DEFAULT_THRESHOLD
            )
        embedder = Embedder(recogniser_path, options.threads, spec.input_mean, spec.input_std)
        return cls(spec, detector, embedder)

    def detect(self, image: np.ndarray, pad_retry: bool = False) -> list[Detection]:
        """Faces in the image. With `pad_retry`, an image with no face is tried once more with a
        border: tightly cropped photos (registry exports, LFW-style crops) often defeat detectors
        that expect some context around a face."""
        found = self.detector.detect(image)
        if found or not pad_retry:
            return found
        pad = max(image.shape[:2]) // 2  # a quarter is not enough for SCRFD on tight crops
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return [_shift(d, -pad) for d in self.detector.detect(padded)]

    def face(self, image: np.ndarray, detection: Detection, embed: bool = True) -> Face:
        aligned, inside = align(image, detection.landmarks)
        embedding = self.embedder.embed(aligned) if embed else None
        return Face(detection, measure(detection, aligned, inside), aligned, embedding)

    def analyse(self, image: np.ndarray, embed: bool = True, pad_retry: bool = False) -> list[Face]:
        """Every face in the image, largest first."""
        detections = sorted(self.detect(image, pad_retry), key=lambda d: -d.height)
        return [self.face(image, d, embed) for d in detections]


def get_pack(name: str) -> PackSpec:
    try:
        return PACKS[name]
    except KeyError:
        raise ModelPackError(f"unknown model pack {name!r}; known: {', '.join(PACKS)}") from None


def _shift(detection: Detection, offset: float) -> Detection:
    x1, y1, x2, y2 = detection.box
    return Detection(
        box=(x1 + offset, y1 + offset, x2 + offset, y2 + offset),
        landmarks=detection.landmarks + np.float32(offset),
        score=detection.score,
    )
