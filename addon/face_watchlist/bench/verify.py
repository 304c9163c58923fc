"""`face-watchlist bench verify`: LFW verification with the configured pack."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from face_watchlist.bench import lfw
from face_watchlist.config import Settings
from face_watchlist.errors import ImageError
from face_watchlist.faces.images import load_image
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.types import Detection

FARS = ("0.01", "0.001")


class _Embedder:
    """Embeds each image once. Photos where no face is found get the fallback: the landmarks
    averaged over every photo where a face was found (LFW photos are roughly centred), counted."""

    def __init__(self, pipeline: FacePipeline, images: Path, pad: int) -> None:
        self.pipeline, self.images, self.pad = pipeline, images, pad
        self.cache: dict[tuple[str, int], np.ndarray] = {}
        self.missing: set[tuple[str, int]] = set()
        self.no_face: list[tuple[str, int]] = []
        self._landmark_sum = np.zeros((5, 2), np.float64)
        self._landmark_n = 0
        self.seconds = 0.0

    def embed_all(self, keys: set[tuple[str, int]]) -> None:
        pending: list[tuple[tuple[str, int], np.ndarray]] = []
        for key in sorted(keys - self.cache.keys() - self.missing):
            path = lfw.image_path(self.images, *key)
            start = time.perf_counter()
            try:
                image = load_image(path)
            except ImageError:
                self.missing.add(key)
                continue
            pad = self.pad
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            detections = self.pipeline.detect(image, pad_retry=True)
            if detections:
                chosen = lfw.central(detections, image.shape)
                self._landmark_sum += chosen.landmarks
                self._landmark_n += 1
                face = self.pipeline.face(image, chosen)
                assert face.embedding is not None
                self.cache[key] = face.embedding
            else:
                pending.append((key, image))
            self.seconds += time.perf_counter() - start
        for key, image in pending:
            self.no_face.append(key)
            landmarks = (self._landmark_sum / max(self._landmark_n, 1)).astype(np.float32)
            fallback = Detection((0.0, 0.0, 0.0, 0.0), landmarks, 0.0)
            face = self.pipeline.face(image, fallback)
            assert face.embedding is not None
            self.cache[key] = face.embedding

    def scores(self, pairs: list[lfw.Pair]) -> tuple[np.ndarray, np.ndarray, int]:
        usable = [p for p in pairs if p.a in self.cache and p.b in self.cache]
        scores = np.array([float(self.cache[p.a] @ self.cache[p.b]) for p in usable])
        same = np.array([p.same for p in usable])
        return scores, same, len(pairs) - len(usable)


def _read_folds(path: Path, limit: int | None) -> list[list[lfw.Pair]]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ImageError(f"{path}: cannot read pair file ({err.strerror})") from None
    folds = lfw.parse_pairs(text)
    if limit:
        half = limit // 2
        folds = [[p for p in f if p.same][:half] + [p for p in f if not p.same][:half] for f in folds]
    return folds


def run_verify(pipeline: FacePipeline, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    folds = _read_folds(args.pairs, args.limit)
    tune = [p for f in _read_folds(args.tune, args.limit) for p in f] if args.tune else []
    embedder = _Embedder(pipeline, args.images, args.pad)
    keys = {k for f in folds for p in f for k in (p.a, p.b)} | {k for p in tune for k in (p.a, p.b)}
    embedder.embed_all(keys)

    scored = [embedder.scores(f) for f in folds]
    skipped = sum(s[2] for s in scored)
    all_scores = np.concatenate([s[0] for s in scored])
    all_same = np.concatenate([s[1] for s in scored])
    report: dict[str, Any] = {"pack": pipeline.spec.name, "pairs": len(all_scores)}
    if len(folds) > 1:
        mean, std, thresholds = lfw.cross_validate([(s[0], s[1]) for s in scored])
        report.update(
            protocol=f"{len(folds)}-fold cross-validation",
            accuracy=mean,
            accuracy_std=std,
            threshold=float(np.mean(thresholds)),
        )
    else:
        if tune:
            tune_scores, tune_same, tune_skipped = embedder.scores(tune)
            threshold = lfw.best_threshold(tune_scores, tune_same)
            report.update(
                protocol=f"threshold tuned on {args.tune.name}",
                tune_pairs=len(tune_scores),
                tune_skipped_pairs=tune_skipped,
            )
        else:
            threshold = lfw.best_threshold(all_scores, all_same)
            report["protocol"] = "threshold tuned on the reported pairs themselves (optimistic)"
        chunks = [c for c in np.array_split(np.arange(len(all_scores)), 10) if len(c)]
        per_chunk = [lfw.accuracy(all_scores[c], all_same[c], threshold) for c in chunks]
        report.update(
            accuracy=lfw.accuracy(all_scores, all_same, threshold),
            accuracy_std=float(np.std(per_chunk)),
            threshold=threshold,
            accuracy_std_note="std over 10 chunks of the reported pairs at that threshold",
        )
    tar = {far: lfw.tar_at_far(all_scores, all_same, float(far)) for far in FARS}
    report["tar_at_far"] = {far: round(v[0], 4) for far, v in tar.items()}
    report["tar_thresholds"] = {far: round(v[1], 4) for far, v in tar.items()}
    report["impostor_pairs"] = int((~all_same).sum())
    report["errors"] = int(np.sum((all_scores >= report["threshold"]) != all_same))
    images = len(embedder.cache)
    report.update(
        images=images,
        no_face=len(embedder.no_face),
        no_face_fallback="aligned with the mean landmarks of all detected LFW faces",
        no_face_images=[f"{n}/{i:04d}" for n, i in embedder.no_face],
        skipped_pairs=skipped,
        missing_images=[f"{n}/{i:04d}" for n, i in sorted(embedder.missing)],
        images_per_second=round(images / embedder.seconds, 1) if embedder.seconds else None,
        threads=settings.pipeline.threads,
    )
    return report
