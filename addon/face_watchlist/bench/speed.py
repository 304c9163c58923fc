"""`face-watchlist bench speed`: pipeline throughput, and its overhead over bare model inference.

Per round, over the same decoded images: (1) the detector's own call, (2) the recogniser's
onnxruntime `run` on blobs prepared beforehand, (3) the whole pipeline (detect, align, quality,
embed), (4) the pipeline from JPEG bytes (decode included). Rounds alternate so that a noisy
neighbour hurts every variant alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from face_watchlist.faces.align import align
from face_watchlist.faces.images import decode_image, load_image
from face_watchlist.faces.pipeline import FacePipeline


def _sample(images: Path, count: int) -> list[Path]:
    paths = sorted(images.glob("*/*.jpg"))
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_speed(pipeline: FacePipeline, args: argparse.Namespace) -> dict[str, Any]:
    pad = args.pad
    blobs_jpeg = []
    frames = []
    for path in _sample(args.images, args.count):
        image = cv2.copyMakeBorder(load_image(path), pad, pad, pad, pad, cv2.BORDER_CONSTANT)
        frames.append(image)
        blobs_jpeg.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    detections = [pipeline.detect(f) for f in frames]
    net = pipeline.embedder._net  # the model class; its session is the bare recogniser
    inputs = [
        cv2.dnn.blobFromImage(
            align(f, d.landmarks)[0], 1.0 / net.input_std, (112, 112), (net.input_mean,) * 3, swapRB=True
        )
        for f, ds in zip(frames, detections, strict=True)
        for d in ds
    ]
    faces = len(inputs)

    def detect_only() -> None:
        for frame in frames:
            pipeline.detector.detect(frame)

    def embed_only() -> None:
        for blob in inputs:
            net.session.run(net.output_names, {net.input_name: blob})

    def full() -> None:
        for frame in frames:
            pipeline.analyse(frame)

    def full_from_jpeg() -> None:
        for data in blobs_jpeg:
            pipeline.analyse(decode_image(data))

    variants = {
        "detect": detect_only,
        "embed": embed_only,
        "pipeline": full,
        "pipeline_with_decode": full_from_jpeg,
    }
    full()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    bare = med["detect"] + med["embed"]
    return {
        "pack": pipeline.spec.name,
        "images": len(frames),
        "faces": faces,
        "rounds": args.rounds,
        "ms_per_image": {k: round(v / len(frames) * 1000, 2) for k, v in med.items()},
        "ms_per_face": {k: round(v / max(faces, 1) * 1000, 2) for k, v in med.items()},
        "images_per_second": round(len(frames) / med["pipeline"], 1),
        "images_per_second_with_decode": round(len(frames) / med["pipeline_with_decode"], 1),
        "overhead_ratio": round(med["pipeline"] / bare, 3),
        "overhead_note": "pipeline time / (bare detector call + bare recogniser run); target <= 1.15",
        "spread": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
        "image_size": list(np.array(frames[0].shape[:2]).tolist()) if frames else None,
    }
