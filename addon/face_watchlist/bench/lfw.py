"""The LFW verification protocol as pure functions: pair files, thresholds, accuracy, TAR at FAR."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.types import Detection


@dataclass(frozen=True)
class Pair:
    a: tuple[str, int]  # (person, image number)
    b: tuple[str, int]
    same: bool


def _pair(fields: list[str], line_no: int) -> Pair:
    try:
        if len(fields) == 3:
            return Pair((fields[0], int(fields[1])), (fields[0], int(fields[2])), True)
        if len(fields) == 4:
            return Pair((fields[0], int(fields[1])), (fields[2], int(fields[3])), False)
    except ValueError:
        pass
    raise FaceWatchlistError(f"pair file line {line_no}: expected 'name n1 n2' or 'name1 n1 name2 n2'")


def parse_pairs(text: str) -> list[list[Pair]]:
    """Folds of pairs. View 1: first line is the pair count (one fold). View 2: first line is
    `folds n`, then per fold n same-person pairs followed by n different-person pairs."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise FaceWatchlistError("pair file is empty")
    head = lines[0]
    pairs = [_pair(fields, n + 2) for n, fields in enumerate(lines[1:])]
    try:
        counts = [int(v) for v in head]
    except ValueError:
        raise FaceWatchlistError("pair file: first line must be a count or 'folds n'") from None
    if len(counts) == 1:
        if counts[0] != len(pairs) and counts[0] * 2 != len(pairs):
            raise FaceWatchlistError(f"pair file announces {counts[0]} pairs but holds {len(pairs)}")
        return [pairs]
    if len(counts) == 2:
        folds, n = counts
        if folds * 2 * n != len(pairs):
            raise FaceWatchlistError(f"pair file announces {folds}x2x{n} pairs but holds {len(pairs)}")
        return [pairs[i * 2 * n : (i + 1) * 2 * n] for i in range(folds)]
    raise FaceWatchlistError("pair file: first line must be a count or 'folds n'")


def image_path(images: Path, person: str, number: int) -> Path:
    """`<name>/<nnnn>.jpg` (this project's copy) or LFW's own `<name>/<name>_<nnnn>.jpg`."""
    short = images / person / f"{number:04d}.jpg"
    return short if short.exists() else images / person / f"{person}_{number:04d}.jpg"


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores >= threshold) == same))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the best accuracy: midpoints between consecutive sorted scores."""
    ordered = np.unique(scores)
    candidates = np.concatenate([[ordered[0] - 1e-6], (ordered[1:] + ordered[:-1]) / 2, [ordered[-1] + 1e-6]])
    accs = [accuracy(scores, same, t) for t in candidates]
    return float(candidates[int(np.argmax(accs))])


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) accepting at most `far` of the different-person pairs (score > threshold).

    With n impostor pairs the smallest measurable FAR is 1/n: below that the threshold is the
    highest impostor score, i.e. zero false accepts.
    """
    impostors = np.sort(scores[~same])[::-1]
    allowed = int(np.floor(far * len(impostors)))
    threshold = float(impostors[min(allowed, len(impostors) - 1)])
    return float(np.mean(scores[same] > threshold)), threshold


def cross_validate(folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, list[float]]:
    """Mean and std of accuracy over folds, each judged at the threshold chosen on the others."""
    accs, thresholds = [], []
    for i, (scores, same) in enumerate(folds):
        train_s = np.concatenate([s for j, (s, _) in enumerate(folds) if j != i])
        train_y = np.concatenate([y for j, (_, y) in enumerate(folds) if j != i])
        threshold = best_threshold(train_s, train_y)
        thresholds.append(threshold)
        accs.append(accuracy(scores, same, threshold))
    return float(np.mean(accs)), float(np.std(accs)), thresholds


def central(detections: list[Detection], shape: tuple[int, ...]) -> Detection:
    """LFW labels the face at the centre of each photo; others are bystanders."""
    cy, cx = shape[0] / 2, shape[1] / 2

    def distance(d: Detection) -> float:
        return float(np.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy))

    return min(detections, key=distance)
