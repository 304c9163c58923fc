"""Alignment of a face onto the 112x112 ArcFace template that every pack's recogniser expects."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from insightface.utils import face_align

# insightface 2.1 calls SimilarityTransform.estimate, deprecated (not broken) in scikit-image 0.26.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

ALIGNED_SIZE = 112
_GRID = np.stack(np.meshgrid(np.arange(ALIGNED_SIZE), np.arange(ALIGNED_SIZE)), -1).reshape(-1, 2)
_GRID = _GRID.astype(np.float32)


def align(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face given by its five landmarks to a 112x112 BGR crop.

    Also returns the mask of crop pixels that come from inside the image: a face near the
    image's edge gets black fill, whose hard edge must not pass for sharpness.
    """
    crop, matrix = face_align.norm_crop2(image, landmarks, image_size=ALIGNED_SIZE)
    inverse = cv2.invertAffineTransform(matrix)
    source = _GRID @ inverse[:, :2].T + inverse[:, 2]
    height, width = image.shape[:2]
    inside = (
        (source[:, 0] >= 0) & (source[:, 0] <= width - 1) & (source[:, 1] >= 0) & (source[:, 1] <= height - 1)
    )
    return np.asarray(crop), inside.reshape(ALIGNED_SIZE, ALIGNED_SIZE)
