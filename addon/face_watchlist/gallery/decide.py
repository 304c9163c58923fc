"""The open-set decision, as pure functions: nearest templates in, "this person" or "nobody" out.

"Nobody on the list" is the usual answer. A match needs the best person's score over the list's
threshold *and* a margin over the best other person (a stranger who looks a bit like several
people on a large registry is not a match), and no reviewer rejection of that same false match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from face_watchlist.faces.packs import Calibration, Thresholds
from face_watchlist.gallery.store import WatchList

Outcome = Literal["match", "nobody"]
Reason = Literal["matched", "no_candidates", "below_threshold", "margin", "rejected"]

# A new probe this close to a probe a reviewer rejected for the same person is the same false
# alarm again (the same stranger, or the same poster on the wall).
REJECTION_SIMILARITY = 0.6


@dataclass(frozen=True)
class PersonScore:
    person_id: int
    score: float  # best cosine over the person's templates
    template_id: int  # the template that gave it
    templates_hit: int  # how many of the person's templates were among the nearest


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason
    person_id: int | None  # the matched person; for "nobody", the closest one (if any)
    list: WatchList | None
    score: float  # raw cosine of the best person (0.0 without candidates)
    margin: float  # best minus runner-up
    runner_up: PersonScore | None
    false_match_rate: float  # calibrated: chance a stranger scores this high on one template
    template_id: int | None = None
    attempts: int = 1
    suppressed: tuple[int, ...] = field(default=())  # people skipped because of a rejection


def person_scores(neighbours: Sequence[tuple[int, float]], owners: Mapping[int, int]) -> list[PersonScore]:
    """Aggregate nearest templates per person (best score), best first."""
    best: dict[int, tuple[float, int]] = {}
    hits: dict[int, int] = {}
    for template_id, score in neighbours:
        person = owners.get(template_id)
        if person is None:  # deleted since the search
            continue
        hits[person] = hits.get(person, 0) + 1
        if person not in best or score > best[person][0]:
            best[person] = (score, template_id)
    ranked = [PersonScore(p, s, t, hits[p]) for p, (s, t) in best.items()]
    return sorted(ranked, key=lambda p: (-p.score, p.person_id))


def fuse(attempts: Sequence[Sequence[PersonScore]]) -> list[PersonScore]:
    """Fuse the per-person scores of several probe faces of one tracked person.

    A person's fused score is the mean over the attempts, leaving out the single worst one when
    there are three or more; a person missing from an attempt's nearest templates scores 0 there.
    One lucky frame does not make a match; one blurred frame among several does not break one.
    """
    attempts = [a for a in attempts if a]
    if len(attempts) <= 1:
        return list(attempts[0]) if attempts else []
    people = {s.person_id for a in attempts for s in a}
    fused = []
    for person in people:
        scores, best, hits = [], None, 0
        for attempt in attempts:
            mine = next((s for s in attempt if s.person_id == person), None)
            scores.append(mine.score if mine else 0.0)
            if mine:
                hits += mine.templates_hit
                best = mine if best is None or mine.score > best.score else best
        assert best is not None
        top = sorted(scores, reverse=True)[: len(scores) - 1 if len(scores) >= 3 else len(scores)]
        fused.append(PersonScore(person, float(np.mean(top)), best.template_id, hits))
    return sorted(fused, key=lambda p: (-p.score, p.person_id))


def _rejected(probe: np.ndarray | None, rejected_probes: Sequence[np.ndarray]) -> bool:
    return probe is not None and any(float(np.dot(probe, r)) >= REJECTION_SIMILARITY for r in rejected_probes)


def decide(
    ranked: Sequence[PersonScore],
    memberships: Mapping[int, Sequence[WatchList]],
    defaults: Thresholds,
    calibration: Calibration,
    probe: np.ndarray | None = None,
    rejections: Mapping[int, Sequence[np.ndarray]] | None = None,
    attempts: int = 1,
) -> Decision:
    """Decide for one probe (or one fused tracked person) from its ranked person scores."""
    rejections = rejections or {}
    suppressed = tuple(p.person_id for p in ranked if _rejected(probe, rejections.get(p.person_id, ())))
    candidates = [p for p in ranked if p.person_id not in suppressed]
    if not candidates:
        reason: Reason = "rejected" if suppressed else "no_candidates"
        return Decision("nobody", reason, None, None, 0.0, 0.0, None, 1.0, None, attempts, suppressed)
    best = candidates[0]
    outranked = bool(suppressed) and ranked[0].person_id in suppressed
    runner_up = candidates[1] if len(candidates) > 1 else None
    margin = best.score - (runner_up.score if runner_up else 0.0)
    fmr = calibration.false_match_rate(best.score)
    # Watch lists first: when a person is on several lists, the alert matters most.
    lists = sorted(memberships.get(best.person_id, ()), key=lambda w: (w.kind != "watch", w.name))
    nobody = Decision(
        "nobody",
        "below_threshold",
        best.person_id,
        None,
        best.score,
        margin,
        runner_up,
        fmr,
        best.template_id,
        attempts,
        suppressed,
    )
    for watch_list in lists:
        threshold = defaults.threshold if watch_list.threshold is None else watch_list.threshold
        needed_margin = defaults.margin if watch_list.margin is None else watch_list.margin
        if best.score < threshold:
            continue
        if margin < needed_margin:
            nobody = replace(nobody, reason="margin")
            continue
        return replace(nobody, outcome="match", reason="matched", list=watch_list)
    if outranked and nobody.reason == "below_threshold":
        # the closest person was a false alarm a reviewer already rejected
        return replace(nobody, reason="rejected")
    return nobody
