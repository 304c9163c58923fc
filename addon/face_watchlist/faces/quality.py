"""Quality measures and the gate that turns them into accept / reject reasons. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face_watchlist.faces.types import Detection, Quality

_KERNEL = np.ones((5, 5), np.uint8)


def sharpness(aligned: np.ndarray, inside: np.ndarray) -> float:
    """Variance of the Laplacian on the aligned crop: low for blurred or upscaled tiny faces.

    Measured on the 112x112 crop so that the value does not depend on the source resolution,
    and only where the crop shows the image (`inside`, shrunk so the fill's edge is left out).
    """
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    keep = cv2.erode(inside.astype(np.uint8), _KERNEL).astype(bool)
    return float(laplacian[keep].var()) if keep.any() else 0.0


def frontalness(landmarks: np.ndarray) -> float:
    """How frontal a face is, from where the nose sits between the eyes (roll removed).

    1.0 when the nose is midway between the eyes, falling to 0.0 when it is level with one eye
    (a profile). Pitch is not estimated: five landmarks give only a weak cue for it.
    """
    right_eye, left_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    axis = left_eye - right_eye
    half = float(np.linalg.norm(axis)) / 2.0
    if half < 1e-6:
        return 0.0
    unit = axis / (2.0 * half)
    offset = float(np.dot(nose - (right_eye + left_eye) / 2.0, unit))
    return float(max(0.0, 1.0 - abs(offset) / half))


def measure(detection: Detection, aligned: np.ndarray, inside: np.ndarray) -> Quality:
    return Quality(
        face_px=detection.height,
        sharpness=sharpness(aligned, inside),
        frontalness=frontalness(detection.landmarks),
        det_score=detection.score,
    )


@dataclass(frozen=True)
class QualityGate:
    """Minimums a face must reach to be matched or enrolled; defaults tuned with `bench sizes`."""

    min_face_px: float = 32.0
    min_sharpness: float = 20.0
    min_frontalness: float = 0.35
    min_det_score: float = 0.6

    def reasons(self, quality: Quality) -> tuple[str, ...]:
        """Why a face fails the gate; empty when it passes."""
        found = []
        if quality.face_px < self.min_face_px:
            found.append(f"too small ({quality.face_px:.0f} px < {self.min_face_px:.0f} px)")
        if quality.sharpness < self.min_sharpness:
            found.append(f"too blurred (sharpness {quality.sharpness:.0f} < {self.min_sharpness:.0f})")
        if quality.frontalness < self.min_frontalness:
            found.append(f"turned away (frontalness {quality.frontalness:.2f} < {self.min_frontalness:.2f})")
        if quality.det_score < self.min_det_score:
            found.append(f"uncertain detection (score {quality.det_score:.2f} < {self.min_det_score:.2f})")
        return tuple(found)

    def passes(self, quality: Quality) -> bool:
        return not self.reasons(quality)
