"""Honest accuracy on the user's own gallery, from the enrolled templates themselves.

Genuine scores: every pair of templates of the same person. Impostor scores: every pair of
templates of different people (a seeded sample of templates when the gallery is large). A
stranger's probe is compared with every template of the pack; they are falsely matched when any
template scores at least the threshold (the best person's score is their best template's). With
p the chance that one different-person comparison reaches the threshold, and the comparisons
taken as independent, the chance that a stranger is matched to someone among N templates is

    FMR per probe = 1 - (1 - p)^N   (about N * p while it is small)

p is estimated three ways: empirically (the share of this gallery's impostor pairs at or over the
threshold; with few pairs, zero says little, so the 95 % upper bound 3/n is reported as well),
from a normal fit of this gallery's impostor scores, and from the pack's calibration (a normal
fit on LFW). The margin rule and the quality gate only lower the real rate, so this is an upper
bound on one probe; but real impostor tails are heavier than normal (on LFW, `bench identify`
measured FPIR 1 % at 0.465 where the normal fit predicts less), so treat the fitted figures as
optimistic and the empirical one as the check. Genuine pairs of enrolment photos are better than
camera frames, so the genuine-below-threshold share is an optimistic miss rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.packs import PackSpec
from face_watchlist.gallery.store import Store

MAX_IMPOSTOR_TEMPLATES = 3000  # 4.5 M pairs: plenty for a tail near 1e-6, bounded memory
DEFAULT_TARGET = 1e-3  # per stranger seen: one false alarm in a thousand strangers


class PlotUnavailable(FaceWatchlistError):
    """matplotlib is not installed (it is a development extra, not needed to run the service)."""


def per_probe_fmr(p: float, templates: int) -> float:
    """1 - (1 - p)^N, computed stably for tiny p."""
    if p <= 0.0 or templates <= 0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return -math.expm1(templates * math.log1p(-p))


def per_comparison_for(target: float, templates: int) -> float:
    """The per-comparison rate p that gives `target` per probe over N templates."""
    return -math.expm1(math.log1p(-target) / max(templates, 1))


def normal_tail(mean: float, sd: float, threshold: float) -> float:
    if sd <= 0:
        return 0.0 if threshold > mean else 1.0
    return 0.5 * math.erfc((threshold - mean) / (sd * math.sqrt(2.0)))


def normal_threshold(mean: float, sd: float, p: float) -> float:
    """The score a normal(mean, sd) exceeds with probability p."""
    p = min(max(p, 1e-15), 0.5)
    return mean + sd * NormalDist().inv_cdf(1.0 - p)


def score_distributions(
    vectors: np.ndarray,
    owners: np.ndarray,
    max_impostor_templates: int = MAX_IMPOSTOR_TEMPLATES,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(genuine scores, impostor scores, whether the impostors were sampled) of L2-normalised
    templates `vectors` owned by the people `owners`."""
    vectors = np.asarray(vectors, dtype=np.float32)
    owners = np.asarray(owners)
    genuine: list[np.ndarray] = []
    for person in np.unique(owners):
        mine = vectors[owners == person]
        if len(mine) > 1:
            scores = mine @ mine.T
            genuine.append(scores[np.triu_indices(len(mine), k=1)])
    sampled = len(vectors) > max_impostor_templates
    if sampled:
        pick = np.sort(
            np.random.default_rng(seed).choice(len(vectors), max_impostor_templates, replace=False)
        )
        vectors, owners = vectors[pick], owners[pick]
    impostor: list[np.ndarray] = []
    for start in range(0, len(vectors), 500):
        block = vectors[start : start + 500] @ vectors.T
        rows = np.arange(start, start + len(block))[:, None]
        keep = (np.arange(len(vectors))[None, :] > rows) & (
            owners[start : start + 500, None] != owners[None, :]
        )
        impostor.append(block[keep])
    empty = np.zeros(0, dtype=np.float32)
    return (
        np.concatenate(genuine) if genuine else empty,
        np.concatenate(impostor) if impostor else empty,
        sampled,
    )


@dataclass(frozen=True)
class ListEstimate:
    name: str
    threshold: float
    people: int
    templates: int  # searched: a stranger is compared with every template of the pack
    fmr_empirical: float | None  # per probe; None without impostor pairs
    fmr_empirical_upper: float | None  # the 95 % upper bound when the empirical tail is 0
    fmr_fit: float  # from the normal fit of this gallery's impostor scores
    fmr_pack: float  # from the pack's LFW calibration
    threshold_for_target: float  # the threshold that would give the target (normal fit)
    max_templates_at_target: int | None  # gallery size at which this threshold reaches the target
    miss_rate: float | None  # genuine pairs under the threshold (optimistic)
    target: float

    @property
    def outgrown(self) -> bool:
        """Any estimate over the target: the gallery has grown past what the threshold holds."""
        return max(self.fmr_fit, self.fmr_pack, self.fmr_empirical or 0.0) > self.target


@dataclass
class CalibrationReport:
    pack: str
    templates: int
    people: int
    genuine: np.ndarray
    impostor: np.ndarray
    sampled: bool
    impostor_mean: float
    impostor_sd: float
    target: float
    lists: list[ListEstimate] = field(default_factory=list)
    default_threshold: float = 0.0

    def summary(self) -> dict[str, Any]:
        def stats(a: np.ndarray) -> dict[str, float] | None:
            if not len(a):
                return None
            return {
                "pairs": len(a),
                "mean": round(float(a.mean()), 4),
                "sd": round(float(a.std()), 4),
                "p01": round(float(np.percentile(a, 1)), 4),
                "p99": round(float(np.percentile(a, 99)), 4),
                "max": round(float(a.max()), 4),
            }

        return {
            "pack": self.pack,
            "templates": self.templates,
            "people": self.people,
            "target_fmr_per_probe": self.target,
            "genuine": stats(self.genuine),
            "impostor": stats(self.impostor),
            "impostor_sampled": self.sampled,
            "lists": [
                {
                    **{
                        k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in est.__dict__.items()
                    },
                    "outgrown": est.outgrown,
                }
                for est in self.lists
            ],
        }


def estimate(
    name: str,
    threshold: float,
    people: int,
    templates: int,
    genuine: np.ndarray,
    impostor: np.ndarray,
    mean: float,
    sd: float,
    spec: PackSpec,
    target: float,
) -> ListEstimate:
    p_fit = normal_tail(mean, sd, threshold)
    p_pack = spec.calibration.false_match_rate(threshold)
    empirical = upper = None
    if len(impostor):
        over = int(np.count_nonzero(impostor >= threshold))
        empirical = per_probe_fmr(over / len(impostor), templates)
        upper = per_probe_fmr(3.0 / len(impostor), templates) if over == 0 else None
    p_worst = max(p_fit, p_pack)
    return ListEstimate(
        name=name,
        threshold=threshold,
        people=people,
        templates=templates,
        fmr_empirical=empirical,
        fmr_empirical_upper=upper,
        fmr_fit=per_probe_fmr(p_fit, templates),
        fmr_pack=per_probe_fmr(p_pack, templates),
        threshold_for_target=max(  # the stricter of this gallery's fit and the pack's
            normal_threshold(mean, sd, per_comparison_for(target, templates)),
            normal_threshold(
                spec.calibration.impostor_mean,
                spec.calibration.impostor_std,
                per_comparison_for(target, templates),
            ),
        ),
        max_templates_at_target=(
            int(math.log1p(-target) / math.log1p(-p_worst)) if 0.0 < p_worst < 1.0 else None
        ),
        miss_rate=float(np.mean(genuine < threshold)) if len(genuine) else None,
        target=target,
    )


def calibrate_store(
    store: Store, spec: PackSpec, list_name: str | None = None, target: float = DEFAULT_TARGET
) -> CalibrationReport:
    templates = store.templates(spec.name)
    if list_name is not None:
        members = {p.id for p in store.people(list_name)}
        templates = [t for t in templates if t.person_id in members]
    if len(templates) < 2:
        raise FaceWatchlistError(
            f"calibrate needs enrolled templates of pack {spec.name} (found {len(templates)})"
        )
    vectors = np.stack([t.embedding for t in templates])
    owners = np.array([t.person_id for t in templates])
    genuine, impostor, sampled = score_distributions(vectors, owners)
    if len(impostor) >= 2:
        mean, sd = float(impostor.mean()), float(impostor.std())
    else:  # one person only: fall back on the pack's own calibration
        mean, sd = spec.calibration.impostor_mean, spec.calibration.impostor_std
    total = len(store.templates(spec.name))  # a probe is compared with every template of the pack
    report = CalibrationReport(
        spec.name,
        len(templates),
        len(set(owners.tolist())),
        genuine,
        impostor,
        sampled,
        mean,
        sd,
        target,
        default_threshold=spec.thresholds.threshold,
    )
    lists = [store.get_list(list_name)] if list_name else store.lists()
    for w in lists:
        threshold = spec.thresholds.threshold if w.threshold is None else w.threshold
        people = len(store.people(w.name))
        report.lists.append(
            estimate(w.name, threshold, people, total, genuine, impostor, mean, sd, spec, target)
        )
    return report


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2e}"


def describe(report: CalibrationReport) -> str:
    s = report.summary()
    lines = [
        f"pack {report.pack}: {report.templates} templates of {report.people} people",
    ]
    if s["genuine"]:
        g = s["genuine"]
        lines.append(
            f"  same person:       {g['pairs']:>9} pairs, mean {g['mean']:.3f}, 1st pct {g['p01']:.3f}"
        )
    else:
        lines.append("  same person:       no pairs (enrol two or more photos per person to measure misses)")
    if s["impostor"]:
        i = s["impostor"]
        sampled = " (sampled)" if report.sampled else ""
        lines.append(
            f"  different people:  {i['pairs']:>9} pairs{sampled}, mean {i['mean']:.3f}, sd {i['sd']:.3f},"
            f" 99th pct {i['p99']:.3f}, max {i['max']:.3f}"
        )
    lines.append(f"expected false matches per stranger seen (target {report.target:.0e}):")
    for est in report.lists:
        emp = _rate(est.fmr_empirical)
        if est.fmr_empirical_upper is not None:
            emp += f" (< {est.fmr_empirical_upper:.1e} at 95 %)"
        miss = "n/a" if est.miss_rate is None else f"{est.miss_rate:.1%}"
        lines.append(
            f"  {est.name}: threshold {est.threshold:.2f} over {est.templates} templates — "
            f"this gallery {emp}, normal fit {_rate(est.fmr_fit)}, pack calibration {_rate(est.fmr_pack)};"
            f" same-person pairs under it {miss}"
        )
        if est.outgrown:
            lines.append(
                f"  WARNING: list {est.name!r} has outgrown its threshold: raise it to about "
                f"{est.threshold_for_target:.2f} (`face-watchlist lists set {est.name} --threshold ...`)"
                " or keep review_first and expect more false alerts"
            )
        elif est.max_templates_at_target:
            lines.append(f"    fine up to about {est.max_templates_at_target} templates at this threshold")
    if not report.lists:
        lines.append("  no lists")
    return "\n".join(lines)


def plot(report: CalibrationReport, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "no plot: matplotlib is not installed (pip install matplotlib); the figures above stand"
        ) from None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = [float(b) for b in np.linspace(-0.4, 1.0, 141)]
    if len(report.impostor):
        ax.hist(report.impostor, bins=bins, density=True, alpha=0.55, label="different people")
    if len(report.genuine):
        ax.hist(report.genuine, bins=bins, density=True, alpha=0.55, label="same person")
    thresholds = sorted({est.threshold for est in report.lists} | {report.default_threshold})
    for t in thresholds:
        ax.axvline(t, color="black", linestyle="--", linewidth=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" threshold {t:.2f}", va="top", fontsize=8)
    ax.set_xlabel("cosine similarity between enrolled templates")
    ax.set_ylabel("density")
    ax.set_title(f"{report.pack}: {report.templates} templates, {report.people} people")
    ax.legend(loc="upper left")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as err:
        raise FaceWatchlistError(f"{path}: cannot write the plot ({err.strerror})") from None
    finally:
        plt.close(fig)
