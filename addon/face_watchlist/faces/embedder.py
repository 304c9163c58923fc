"""Recognisers: an aligned 112x112 crop in, an L2-normalised float32 embedding out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from insightface.model_zoo.arcface_onnx import ArcFaceONNX

from face_watchlist.faces import runtime


class Embedder:
    """insightface's ArcFace model class on our own onnxruntime session.

    The input scaling comes from the pack: insightface guesses it from node names and guesses
    wrong for SFace (which normalises inside its graph and wants RGB 0..255).
    """

    def __init__(self, model: Path, threads: int, input_mean: float, input_std: float) -> None:
        self._net = ArcFaceONNX(str(model), session=runtime.session(model, threads))
        self._net.input_mean = input_mean
        self._net.input_std = input_std
        self.size = int(self._net.output_shape[-1])

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        vector = np.asarray(self._net.get_feat(aligned), dtype=np.float32).ravel()
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two L2-normalised embeddings."""
    return float(np.dot(a, b))
