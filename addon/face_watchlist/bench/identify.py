"""`face-watchlist bench identify`: open-set 1:N identification as NIST FRVT reports it.

Every photo under `--gallery/<identity>/` is enrolled (through the real enrolment path, into a
temporary store and index); every photo under `--probes/<identity>/` is searched. Probes whose
identity is enrolled are mated searches, the others non-mated. FPIR(T) is the share of non-mated
searches whose best score reaches T; FNIR(T) the share of mated searches whose mate is not the
rank-1 candidate at a score of at least T.

`make_lfw_split` builds such a split from LFW: people with several photos have their first one
enrolled and their second one probed; people with a single photo are the strangers.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from face_watchlist.bench import lfw
from face_watchlist.config import Settings
from face_watchlist.errors import FaceWatchlistError, ImageError
from face_watchlist.faces.images import load_image
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.types import Face
from face_watchlist.gallery import enroll
from face_watchlist.gallery.decide import decide
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store

FPIRS = ("0.1", "0.01", "0.001")
PAD = 40  # LFW photos are tight 150x150 crops; the verification benchmark pads them alike


def _pad(image: np.ndarray) -> np.ndarray:
    return cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _central(faces: list[Face], shape: tuple[int, ...]) -> Face:
    chosen = lfw.central([f.detection for f in faces], shape)
    return next(f for f in faces if f.detection is chosen)


def _photos(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise FaceWatchlistError(f"{root}: not a folder of <identity>/*.jpg")
    return [
        (person.name, photo)
        for person in sorted(p for p in root.iterdir() if p.is_dir())
        for photo in sorted(person.iterdir())
        if photo.suffix.lower() in enroll.IMAGE_SUFFIXES
    ]


def fnir_at_fpir(
    mated: list[tuple[float, bool]], non_mated: list[float], fpir: float
) -> tuple[float, float, float]:
    """(FNIR, threshold, achieved FPIR) at the lowest threshold whose FPIR is at most `fpir`.

    `mated` holds (rank-1 score, rank-1 is the mate) per mated search; `non_mated` the rank-1
    score of each non-mated search.
    """
    ordered = np.sort(np.asarray(non_mated, dtype=np.float64))[::-1]
    allowed = int(np.floor(fpir * len(ordered)))
    threshold = float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else -1.0
    achieved = float(np.mean(ordered >= threshold)) if len(ordered) else 0.0
    hits = sum(1 for score, is_mate in mated if is_mate and score >= threshold)
    return 1.0 - hits / len(mated) if mated else 0.0, threshold, achieved


def run_identify(pipeline: FacePipeline, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    gallery_photos, probe_photos = _photos(args.gallery), _photos(args.probes)
    with tempfile.TemporaryDirectory(prefix="fw-identify-") as tmp:
        store = Store(Path(tmp))
        try:
            gallery = Gallery(store, pipeline.spec)
            report = _run(pipeline, settings, gallery, gallery_photos, probe_photos)
        finally:
            store.close()
    if args.plot:
        _plot(report.pop("_det"), args.plot, pipeline.spec.name)
        report["plot"] = str(args.plot)
    else:
        report.pop("_det")
    return report


def _run(
    pipeline: FacePipeline,
    settings: Settings,
    gallery: Gallery,
    gallery_photos: list[tuple[str, Path]],
    probe_photos: list[tuple[str, Path]],
) -> dict[str, Any]:
    # enrolment through the real path, timed against the bare pipeline on the same photos
    jobs = [enroll.PhotoJob(str(p), name, name, enroll.file_loader(p)) for name, p in gallery_photos]
    watch_list = gallery.store.create_list("benchmark")
    enroller = enroll.Enroller(gallery, pipeline, settings.gate, "import", prepare=_pad, pick=_central)
    start = time.perf_counter()
    summary = enroller.run(jobs, watch_list)
    enrol_s = time.perf_counter() - start
    start = time.perf_counter()
    for _, photo in gallery_photos:
        pipeline.analyse(_pad(load_image(photo)), pad_retry=True)
    pipeline_s = time.perf_counter() - start

    enrolled = {p.external_id for p in gallery.store.people()}
    person_of = {p.id: p.external_id for p in gallery.store.people()}
    mated: list[tuple[float, bool]] = []
    non_mated: list[float] = []
    no_face = 0
    default_errors = {"false_positive": 0, "missed": 0}
    for identity, photo in probe_photos:
        try:
            image = _pad(load_image(photo))
        except ImageError:
            no_face += 1
            continue
        faces = pipeline.analyse(image, pad_retry=True)
        if not faces:
            no_face += 1  # a search without candidates: a miss if mated, a true negative if not
            if identity in enrolled:
                mated.append((-1.0, False))
            else:
                non_mated.append(-1.0)
            continue
        face = _central(faces, image.shape)
        assert face.embedding is not None
        found = gallery.candidates(face.embedding)
        top = found.ranked[0] if found.ranked else None
        score = top.score if top else -1.0
        decision = decide(
            found.ranked,
            gallery.store.memberships([p.person_id for p in found.ranked[:2]]),
            pipeline.spec.thresholds,
            pipeline.spec.calibration,
        )
        matched = person_of.get(decision.person_id or 0) if decision.outcome == "match" else None
        if identity in enrolled:
            is_mate = top is not None and person_of.get(top.person_id) == identity
            mated.append((score, is_mate))
            default_errors["missed"] += matched != identity
        else:
            non_mated.append(score)
            default_errors["false_positive"] += matched is not None

    points = {f: fnir_at_fpir(mated, non_mated, float(f)) for f in FPIRS}
    det = _det_curve(mated, non_mated)
    counts = summary.counts()
    return {
        "pack": pipeline.spec.name,
        "enrolled_people": len(enrolled),
        "enrolled_photos": counts["enrolled"],
        "enrolment_failures": counts["skipped"],
        "enrolment_failure_reasons": summary.skip_reasons(),
        "mated_searches": len(mated),
        "non_mated_searches": len(non_mated),
        "probes_without_face": no_face,
        "rank1_rate": round(sum(1 for _, m in mated if m) / len(mated), 4) if mated else None,
        "fnir_at_fpir": {f: round(v[0], 4) for f, v in points.items()},
        "thresholds_at_fpir": {f: round(v[1], 4) for f, v in points.items()},
        "achieved_fpir": {f: round(v[2], 5) for f, v in points.items()},
        "default_rule": {
            "threshold": pipeline.spec.thresholds.threshold,
            "margin": pipeline.spec.thresholds.margin,
            "fpir": round(default_errors["false_positive"] / len(non_mated), 5) if non_mated else None,
            "fnir": round(default_errors["missed"] / len(mated), 4) if mated else None,
        },
        "enrolment_s_per_photo": round(enrol_s / max(len(jobs), 1), 4),
        "pipeline_s_per_photo": round(pipeline_s / max(len(jobs), 1), 4),
        "enrolment_overhead_ratio": round(enrol_s / pipeline_s, 3) if pipeline_s else None,
        "_det": det,
    }


def _det_curve(mated: list[tuple[float, bool]], non_mated: list[float]) -> list[tuple[float, float]]:
    """(FNIR, FPIR) pairs over the thresholds the scores themselves suggest (at most ~300)."""
    scores = np.array(non_mated)
    thresholds = sorted(set(non_mated) | {s for s, _ in mated})
    points = []
    for t in thresholds[:: max(1, len(thresholds) // 300)]:
        fpir = float(np.mean(scores >= t)) if len(scores) else 0.0
        points.append((fnir_at_fpir(mated, non_mated, fpir)[0], fpir))
    return points


def _plot(det: list[tuple[float, float]], path: Path, pack: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    points = [(fpir, fnir) for fnir, fpir in det if fpir > 0]
    ax.plot([p[0] for p in points], [max(p[1], 1e-4) for p in points], marker=".", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (non-mated searches returning someone)")
    ax.set_ylabel("FNIR (mated searches missing their mate)")
    ax.set_title(f"Open-set identification DET ({pack})")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_lfw_split(
    images: Path, out: Path, enrolled: int, strangers: int, seed: int, per_person: int = 1
) -> dict[str, int]:
    """Symlink an identification split of LFW under `out/gallery` and `out/probes`: people with
    more than `per_person` photos have their first `per_person` enrolled and the next probed;
    people with a single photo are the strangers."""
    people = sorted(p for p in images.iterdir() if p.is_dir())
    several = [p for p in people if len(list(p.glob("*.jpg"))) > per_person]
    single = [p for p in people if len(list(p.glob("*.jpg"))) == 1]
    rng = random.Random(seed)
    chosen = rng.sample(several, min(enrolled, len(several)))
    others = rng.sample(single, min(strangers, len(single)))
    for person in chosen:
        photos = sorted(person.glob("*.jpg"))
        for photo in photos[:per_person]:
            _link(photo, out / "gallery" / person.name / photo.name)
        _link(photos[per_person], out / "probes" / person.name / photos[per_person].name)
    for person in others:
        photo = next(iter(sorted(person.glob("*.jpg"))))
        _link(photo, out / "probes" / person.name / photo.name)
    return {"enrolled": len(chosen), "strangers": len(others)}


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())
