"""Alignment of a face onto the 112x112 ArcFace template that every pack's recogniser expects."""

from __future__ import annotations

import warnings

import numpy as np
from insightface.utils import face_align

# insightface 2.1 calls SimilarityTransform.estimate, deprecated (not broken) in scikit-image 0.26.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

ALIGNED_SIZE = 112


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp the face given by its five landmarks to a 112x112 BGR crop."""
    return np.asarray(face_align.norm_crop(image, landmarks, image_size=ALIGNED_SIZE))
