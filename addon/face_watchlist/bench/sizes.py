"""`face-watchlist bench sizes`: how small a face may be.

Each sampled LFW photo is shrunk so its face is S pixels tall, pasted into a 1280x720 frame and
JPEG-encoded at quality 70 (as Frigate sends snapshots); per size we report how often the face
is found and how similar it stays to a full-size photo of the same person (and of someone else).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from face_watchlist.bench.lfw import image_path
from face_watchlist.faces.images import decode_image, load_image
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.quality import QualityGate
from face_watchlist.faces.types import Face, iou

SIZES = (16, 24, 32, 48, 64, 96, 128)
FRAME_W, FRAME_H = 1280, 720
PAD = 40


def _background(rng: np.random.Generator) -> np.ndarray:
    """A textured, camera-like backdrop: smooth noise at several scales."""
    frame = np.zeros((FRAME_H, FRAME_W, 3), np.float32)
    for cells, weight in ((8, 90.0), (40, 40.0), (200, 15.0)):
        noise = rng.random((max(2, cells * FRAME_H // FRAME_W), cells, 3)).astype(np.float32)
        frame += weight * cv2.resize(noise, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
    return np.clip(frame + 40, 0, 255).astype(np.uint8)


def _pad(image: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _largest(faces: list[Face]) -> Face | None:
    return faces[0] if faces else None


def _people(images: Path, count: int, rng: random.Random) -> list[tuple[Path, Path]]:
    people = sorted(p for p in images.iterdir() if p.is_dir())
    rng.shuffle(people)
    chosen = []
    for person in people:
        first, second = image_path(images, person.name, 1), image_path(images, person.name, 2)
        if first.exists() and second.exists():
            chosen.append((first, second))
            if len(chosen) == count:
                break
    return chosen


def run_sizes(pipeline: FacePipeline, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    gate = QualityGate()
    refs: list[np.ndarray] = []
    probes: list[tuple[np.ndarray, tuple[float, float, float, float]]] = []
    for first, second in _people(args.images, args.people, rng):
        photo = _pad(load_image(second))
        ref = _largest(pipeline.analyse(_pad(load_image(first))))
        probe = _largest(pipeline.analyse(photo, embed=False))
        if ref is None or probe is None or ref.embedding is None:
            continue
        refs.append(ref.embedding)
        probes.append((photo, probe.detection.box))

    backgrounds = [_background(nrng) for _ in range(5)]
    rows = []
    for size in SIZES:
        found = passed = 0
        same: list[float] = []
        other: list[float] = []
        for index, (photo, box) in enumerate(probes):
            scale = size / (box[3] - box[1])
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=interp)
            h, w = small.shape[:2]
            if h >= FRAME_H or w >= FRAME_W:
                continue
            x, y = rng.randrange(0, FRAME_W - w), rng.randrange(0, FRAME_H - h)
            frame = backgrounds[index % len(backgrounds)].copy()
            frame[y : y + h, x : x + w] = small
            _, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
            frame = decode_image(jpeg.tobytes())
            expected = (x + box[0] * scale, y + box[1] * scale, x + box[2] * scale, y + box[3] * scale)
            match = [d for d in pipeline.detect(frame) if iou(d.box, expected) >= 0.3]
            if not match:
                continue
            found += 1
            face = pipeline.face(frame, max(match, key=lambda d: iou(d.box, expected)))
            assert face.embedding is not None
            passed += gate.passes(face.quality)
            same.append(float(face.embedding @ refs[index]))
            other.append(float(face.embedding @ refs[(index + 1) % len(refs)]))
        n = len(probes)
        rows.append(
            {
                "face_px": size,
                "detection_rate": round(found / n, 3) if n else None,
                "quality_pass_rate": round(passed / n, 3) if n else None,
                "same_person_mean": _stat(np.mean, same),
                "same_person_p10": _stat(lambda v: np.percentile(v, 10), same),
                "different_person_mean": _stat(np.mean, other),
                "different_person_p90": _stat(lambda v: np.percentile(v, 90), other),
            }
        )
    report: dict[str, Any] = {
        "pack": pipeline.spec.name,
        "people": len(probes),
        "frame": f"{FRAME_W}x{FRAME_H}, JPEG quality 70",
        "sizes": rows,
    }
    if args.plot:
        _plot(rows, args.plot, pipeline.spec.name)
        report["plot"] = str(args.plot)
    return report


def _stat(fn: Any, values: list[float]) -> float | None:
    return round(float(fn(values)), 4) if values else None


def _plot(rows: list[dict[str, Any]], path: Path, pack: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["face_px"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("detection_rate", "detection rate"),
        ("quality_pass_rate", "passes quality gate"),
        ("same_person_mean", "same-person similarity (mean)"),
        ("same_person_p10", "same-person similarity (10th pct)"),
        ("different_person_p90", "different-person similarity (90th pct)"),
    ):
        ax.plot(sizes, [r[key] if r[key] is not None else np.nan for r in rows], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("face height in a 1280x720 frame (px)")
    ax.set_title(f"Face size vs detection and similarity ({pack})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
