"""The open-set decision as pure functions, on synthetic scores: thresholds, margins, per-list
overrides, watch lists first, reviewer rejections, calibration and the fusion of several probes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from face_watchlist.faces.packs import PACKS, Calibration, Thresholds
from face_watchlist.gallery.decide import (
    REJECTION_SIMILARITY,
    Decision,
    PersonScore,
    decide,
    fuse,
    person_scores,
)
from face_watchlist.gallery.store import WatchList

DEFAULTS = Thresholds(threshold=0.45, margin=0.05)
CALIBRATION = Calibration(impostor_mean=0.09, impostor_std=0.09)
WATCH = WatchList(1, "intruders", "watch", None, None, "review_first")
KNOWN = WatchList(2, "staff", "known", None, None, "immediate")
PROBE = np.array([1.0, 0.0, 0.0, 0.0])


def ps(person: int, score: float, template: int | None = None, hits: int = 1) -> PersonScore:
    return PersonScore(person, score, template if template is not None else 100 + person, hits)


def near(similarity: float) -> np.ndarray:
    """A unit vector with this cosine to PROBE."""
    return np.array([similarity, math.sqrt(1.0 - similarity**2), 0.0, 0.0])


def run(
    ranked: Sequence[PersonScore],
    memberships: Mapping[int, Sequence[WatchList]] | None = None,
    rejections: Mapping[int, Sequence[np.ndarray]] | None = None,
    probe: np.ndarray | None = PROBE,
) -> Decision:
    if memberships is None:
        memberships = {p.person_id: [WATCH] for p in ranked}
    return decide(ranked, memberships, DEFAULTS, CALIBRATION, probe=probe, rejections=rejections)


# person_scores ------------------------------------------------------------------------------


def test_person_scores_keeps_the_best_per_person_and_counts_hits() -> None:
    neighbours = [(10, 0.9), (20, 0.85), (11, 0.8), (99, 0.95), (12, 0.3), (30, 0.85)]
    owners = {10: 1, 11: 1, 12: 1, 20: 2, 30: 3}  # 99: deleted since the search
    assert person_scores(neighbours, owners) == [
        PersonScore(1, 0.9, 10, 3),
        PersonScore(2, 0.85, 20, 1),  # a tie is broken by person id
        PersonScore(3, 0.85, 30, 1),
    ]
    assert person_scores([], owners) == []
    assert person_scores([(99, 0.9)], owners) == []
    # a better template later in the list still wins
    assert person_scores([(11, 0.5), (10, 0.7)], owners) == [PersonScore(1, 0.7, 10, 2)]


# decide -------------------------------------------------------------------------------------


def test_no_candidates_is_nobody() -> None:
    decision = run([])
    assert (decision.outcome, decision.reason) == ("nobody", "no_candidates")
    assert (decision.person_id, decision.list, decision.score, decision.runner_up) == (None, None, 0.0, None)
    assert decision.false_match_rate == 1.0


def test_below_threshold_is_nobody_with_the_closest_person() -> None:
    decision = run([ps(1, 0.40), ps(2, 0.1)])
    assert (decision.outcome, decision.reason) == ("nobody", "below_threshold")
    assert (decision.person_id, decision.list) == (1, None)
    assert decision.score == 0.40
    assert decision.margin == pytest.approx(0.30)


def test_too_small_a_margin_is_nobody() -> None:
    decision = run([ps(1, 0.60), ps(2, 0.57)])
    assert (decision.outcome, decision.reason, decision.person_id) == ("nobody", "margin", 1)
    assert decision.margin == pytest.approx(0.03)
    assert decision.runner_up == ps(2, 0.57)


def test_a_clear_winner_is_a_match_on_the_watch_list() -> None:
    decision = run([ps(1, 0.70, template=7, hits=3), ps(2, 0.30)])
    assert (decision.outcome, decision.reason, decision.person_id) == ("match", "matched", 1)
    assert decision.list == WATCH
    assert decision.score == 0.70
    assert decision.margin == pytest.approx(0.40)
    assert decision.runner_up == ps(2, 0.30)
    assert decision.template_id == 7
    assert decision.false_match_rate == CALIBRATION.false_match_rate(0.70)
    assert decision.suppressed == ()
    # alone in the gallery: the margin is over nobody (0)
    assert run([ps(1, 0.46)]).outcome == "match"
    # exactly at the threshold is enough
    assert run([ps(1, DEFAULTS.threshold)]).outcome == "match"


@pytest.mark.parametrize(
    ("threshold", "margin", "ranked", "expected"),
    [
        (None, None, [ps(1, 0.50), ps(2, 0.20)], ("match", "matched")),  # None = the pack's defaults
        (0.80, None, [ps(1, 0.70), ps(2, 0.20)], ("nobody", "below_threshold")),
        (0.30, None, [ps(1, 0.40), ps(2, 0.10)], ("match", "matched")),
        (None, 0.0, [ps(1, 0.60), ps(2, 0.59)], ("match", "matched")),
        (None, 0.50, [ps(1, 0.70), ps(2, 0.30)], ("nobody", "margin")),
        (0.30, 0.50, [ps(1, 0.40)], ("nobody", "margin")),
        (None, None, [ps(1, 0.44)], ("nobody", "below_threshold")),
    ],
)
def test_per_list_threshold_and_margin_override_the_defaults(
    threshold: float | None, margin: float | None, ranked: list[PersonScore], expected: tuple[str, str]
) -> None:
    custom = WatchList(5, "custom", "watch", threshold, margin, "review_first")
    decision = run(ranked, {1: [custom], 2: [custom]})
    assert (decision.outcome, decision.reason) == expected
    assert decision.list == (custom if expected[0] == "match" else None)


def test_a_person_on_a_watch_and_a_known_list_is_reported_on_the_watch_list() -> None:
    for lists in ([KNOWN, WATCH], [WATCH, KNOWN]):
        assert run([ps(1, 0.8)], {1: lists}).list == WATCH
    other_watch = WatchList(3, "banned", "watch", None, None, "immediate")
    assert run([ps(1, 0.8)], {1: [KNOWN, WATCH, other_watch]}).list == other_watch  # by name
    # a stricter watch list that does not match: the known list still does
    strict_watch = WatchList(4, "intruders", "watch", 0.9, None, "review_first")
    decision = run([ps(1, 0.8)], {1: [strict_watch, KNOWN]})
    assert (decision.outcome, decision.list) == ("match", KNOWN)
    # on no list at all (cannot match anywhere)
    assert run([ps(1, 0.8)], {}).outcome == "nobody"


def test_a_rejected_probe_suppresses_that_person() -> None:
    rejected = {1: [near(0.9)]}
    alone = run([ps(1, 0.9)], rejections=rejected)
    assert (alone.outcome, alone.reason, alone.person_id) == ("nobody", "rejected", None)
    assert alone.suppressed == (1,)

    # the runner-up may match, on its own merit: its margin is over the next person
    decision = run([ps(1, 0.9), ps(2, 0.7), ps(3, 0.2)], rejections=rejected)
    assert (decision.outcome, decision.person_id, decision.suppressed) == ("match", 2, (1,))
    assert decision.margin == pytest.approx(0.5)
    assert decision.runner_up == ps(3, 0.2)
    decision = run([ps(1, 0.9), ps(2, 0.7), ps(3, 0.68)], rejections=rejected)
    assert (decision.outcome, decision.reason, decision.person_id) == ("nobody", "margin", 2)
    decision = run([ps(1, 0.9), ps(2, 0.4)], rejections=rejected)
    # the closest person was rejected and nobody else is close enough: say so
    assert (decision.outcome, decision.reason, decision.person_id) == ("nobody", "rejected", 2)
    assert decision.suppressed == (1,)

    # a rejection of someone else's probe, or of this person for another face, changes nothing
    assert run([ps(1, 0.9)], rejections={2: [near(1.0)]}).outcome == "match"
    dissimilar = run([ps(1, 0.9)], rejections={1: [near(REJECTION_SIMILARITY - 0.05), -PROBE]})
    assert (dissimilar.outcome, dissimilar.suppressed) == ("match", ())
    # at the similarity itself it is the same false alarm again
    assert run([ps(1, 0.9)], rejections={1: [near(REJECTION_SIMILARITY)]}).suppressed == (1,)
    # no probe embedding: rejections cannot be compared
    assert run([ps(1, 0.9)], rejections=rejected, probe=None).outcome == "match"


# calibration --------------------------------------------------------------------------------


@given(
    a=st.floats(-1.0, 1.0),
    b=st.floats(-1.0, 1.0),
    mean=st.floats(-0.2, 0.3),
    std=st.floats(0.01, 0.3),
)
@settings(max_examples=200, deadline=None)
def test_false_match_rate_is_monotone_and_floored(a: float, b: float, mean: float, std: float) -> None:
    calibration = Calibration(mean, std)
    low, high = sorted((a, b))
    assert calibration.false_match_rate(low) >= calibration.false_match_rate(high)
    for score in (low, high):
        assert Calibration.FLOOR <= calibration.false_match_rate(score) <= 1.0


def test_false_match_rate_of_the_packs() -> None:
    for spec in PACKS.values():
        calibration = spec.calibration
        assert calibration.false_match_rate(calibration.impostor_mean) == pytest.approx(0.5)
        assert calibration.false_match_rate(1.0) == Calibration.FLOOR
        assert calibration.false_match_rate(-1.0) == pytest.approx(1.0)
        rates = [calibration.false_match_rate(s) for s in np.linspace(-1, 1, 201)]
        assert all(x >= y for x, y in itertools.pairwise(rates))
        # the default threshold means a small chance for a stranger
        assert calibration.false_match_rate(spec.thresholds.threshold) < 1e-3


# fuse ---------------------------------------------------------------------------------------


def test_fuse_pulls_down_a_person_high_in_one_attempt_only() -> None:
    attempts = [
        [ps(1, 0.90), ps(2, 0.60), ps(3, 0.10)],  # one lucky frame for person 1
        [ps(2, 0.62), ps(3, 0.20)],
        [ps(2, 0.58), ps(3, 0.15)],
    ]
    fused = fuse(attempts)
    by_person = {p.person_id: p for p in fused}
    # person 1 scores 0 where missing; with three attempts the worst one is left out
    assert by_person[1].score == pytest.approx((0.90 + 0.0) / 2)
    assert by_person[2].score == pytest.approx((0.62 + 0.60) / 2)
    assert [p.person_id for p in fused] == [2, 1, 3]  # the consistent person wins
    assert by_person[2].templates_hit == 3
    assert by_person[2].template_id == 102  # the template of their best attempt
    decision = run(fused)
    assert (decision.outcome, decision.person_id) == ("match", 2)


def test_fuse_one_blurred_frame_does_not_break_a_match() -> None:
    fused = fuse([[ps(1, 0.75), ps(2, 0.2)], [ps(1, 0.72), ps(2, 0.25)], [ps(2, 0.3), ps(1, 0.1)]])
    assert fused[0].person_id == 1
    assert fused[0].score == pytest.approx((0.75 + 0.72) / 2)


def test_fuse_single_and_empty_attempts() -> None:
    single = [ps(1, 0.8), ps(2, 0.3)]
    assert fuse([single]) == single
    assert fuse([[], single, []]) == single  # attempts without candidates are left out
    assert fuse([]) == []
    assert fuse([[], []]) == []


# invariants ---------------------------------------------------------------------------------

_OPTIONAL_THRESHOLD = st.one_of(st.none(), st.floats(0.0, 1.0))
_OPTIONAL_MARGIN = st.one_of(st.none(), st.floats(0.0, 0.5))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[PersonScore], dict[int, list[WatchList]], dict[int, list]]:
    n = draw(st.integers(0, 6))
    scores = sorted(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)), reverse=True)
    ids = draw(st.permutations(range(1, n + 1)))
    ranked = sorted(
        (ps(person, score) for person, score in zip(ids, scores, strict=True)),
        key=lambda p: (-p.score, p.person_id),
    )
    lists = [
        WatchList(1, "a-watch", "watch", draw(_OPTIONAL_THRESHOLD), draw(_OPTIONAL_MARGIN), "review_first"),
        WatchList(2, "b-known", "known", draw(_OPTIONAL_THRESHOLD), draw(_OPTIONAL_MARGIN), "immediate"),
        WatchList(3, "c-watch", "watch", draw(_OPTIONAL_THRESHOLD), draw(_OPTIONAL_MARGIN), "immediate"),
    ]
    memberships = {
        p.person_id: draw(st.lists(st.sampled_from(lists), unique_by=lambda w: w.id, max_size=3))
        for p in ranked
    }
    rejections = {
        p.person_id: [near(draw(st.sampled_from([0.95, REJECTION_SIMILARITY, 0.3, -0.5])))]
        for p in ranked
        if draw(st.booleans())
    }
    return ranked, memberships, rejections


def _effective(watch_list: WatchList) -> tuple[float, float]:
    threshold = DEFAULTS.threshold if watch_list.threshold is None else watch_list.threshold
    margin = DEFAULTS.margin if watch_list.margin is None else watch_list.margin
    return threshold, margin


@given(scenarios())
@settings(max_examples=300, deadline=None)
def test_decide_invariants(
    scenario: tuple[list[PersonScore], dict[int, list[WatchList]], dict[int, list]],
) -> None:
    ranked, memberships, rejections = scenario
    decision = run(ranked, memberships, rejections)
    suppressed = {
        p for p, probes in rejections.items() if any(float(PROBE @ r) >= REJECTION_SIMILARITY for r in probes)
    }
    assert set(decision.suppressed) == suppressed
    candidates = [p for p in ranked if p.person_id not in suppressed]

    if decision.outcome == "match":
        best = candidates[0]
        assert decision.person_id == best.person_id  # always the top non-suppressed candidate
        assert decision.person_id not in suppressed
        assert decision.list in memberships[best.person_id]
        threshold, margin = _effective(decision.list)
        assert decision.score == best.score >= threshold
        assert decision.margin >= margin
        runner_up = candidates[1].score if len(candidates) > 1 else 0.0
        assert decision.margin == best.score - runner_up
        # the watch lists come first
        if decision.list.kind == "known":
            for other in memberships[best.person_id]:
                if other.kind == "watch":
                    t, m = _effective(other)
                    assert not (best.score >= t and decision.margin >= m)
    else:
        assert decision.list is None
        if not candidates:
            assert decision.reason == ("rejected" if suppressed else "no_candidates")
            assert decision.person_id is None
        else:
            best = candidates[0]
            runner_up = candidates[1].score if len(candidates) > 1 else 0.0
            # nobody only when no list of the best person would have taken them
            for watch_list in memberships[best.person_id]:
                threshold, margin = _effective(watch_list)
                assert best.score < threshold or best.score - runner_up < margin
            assert decision.person_id == best.person_id
