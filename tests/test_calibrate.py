"""`calibrate` on a gallery enrolled from tests/data through the real pipeline: the score
distributions, the per-probe false-match model, the outgrown-threshold warning and the plot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.cli import main
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.quality import QualityGate
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.trust import calibrate

JOHNS = Path(__file__).resolve().parent / "data/faces/dlib_johns/images"
SPEC = PACKS["opencv-zoo"]


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline) -> Path:
    data = tmp_path_factory.mktemp("calibrate") / "data"
    store = Store(data)
    try:
        gallery = Gallery(store, SPEC)
        enroller = enroll.Enroller(gallery, pipeline, QualityGate(), "import")
        enroller.run(enroll.folder_jobs(JOHNS), store.ensure_list("johns"))
    finally:
        store.close()
    return data


@pytest.fixture
def store(gallery_dir: Path) -> Iterator[Store]:
    s = Store(gallery_dir)
    yield s
    s.close()


def test_per_probe_model() -> None:
    assert calibrate.per_probe_fmr(0.0, 1000) == 0.0
    assert calibrate.per_probe_fmr(1e-6, 1000) == pytest.approx(1 - (1 - 1e-6) ** 1000, rel=1e-9)
    assert calibrate.per_probe_fmr(1e-9, 10) == pytest.approx(1e-8, rel=1e-6)  # ~N*p when small
    p = calibrate.per_comparison_for(1e-3, 500)
    assert calibrate.per_probe_fmr(p, 500) == pytest.approx(1e-3, rel=1e-9)
    assert calibrate.normal_tail(0.1, 0.1, calibrate.normal_threshold(0.1, 0.1, 1e-5)) == pytest.approx(
        1e-5, rel=1e-6
    )


def test_score_distributions_pair_counts() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(7, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    owners = np.array([1, 1, 1, 2, 2, 3, 4])
    genuine, impostor, sampled = calibrate.score_distributions(vectors, owners)
    assert len(genuine) == 3 + 1  # C(3,2) + C(2,2)
    assert len(impostor) == 21 - 4  # every pair minus the same-person ones
    assert not sampled
    assert float(genuine[0]) == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-6)
    _, few, sampled = calibrate.score_distributions(vectors, owners, max_impostor_templates=4)
    assert sampled
    assert len(few) <= 6


def test_real_gallery_separates_same_and_different_people(store: Store) -> None:
    report = calibrate.calibrate_store(store, SPEC)
    people = len(store.people())
    templates = len(store.templates(SPEC.name))
    assert (report.people, report.templates) == (people, templates)
    assert people == 5
    per_person = [len(store.templates(SPEC.name, p.id)) for p in store.people()]
    assert len(report.genuine) == sum(k * (k - 1) // 2 for k in per_person)
    assert len(report.impostor) == templates * (templates - 1) // 2 - len(report.genuine)
    assert report.genuine.mean() > 0.6
    assert report.impostor.mean() < 0.2
    (johns,) = report.lists
    assert johns.threshold == SPEC.thresholds.threshold
    assert johns.fmr_empirical == 0.0  # no two Johns score 0.52
    assert johns.fmr_empirical_upper is not None
    assert johns.fmr_empirical_upper == pytest.approx(
        calibrate.per_probe_fmr(3 / len(report.impostor), templates)
    )
    assert johns.fmr_pack == pytest.approx(
        calibrate.per_probe_fmr(SPEC.calibration.false_match_rate(johns.threshold), templates)
    )
    assert not johns.outgrown
    assert johns.max_templates_at_target is not None
    assert johns.max_templates_at_target > templates
    assert "johns: threshold 0.52" in calibrate.describe(report)


def test_a_low_threshold_is_reported_as_outgrown(store: Store) -> None:
    store.update_list("johns", threshold=0.2)
    try:
        report = calibrate.calibrate_store(store, SPEC)
    finally:
        store.update_list("johns", threshold=None)
    (johns,) = report.lists
    assert johns.outgrown
    assert johns.fmr_empirical is not None
    assert johns.fmr_empirical > 0.01
    assert johns.threshold_for_target > 0.2
    assert "WARNING: list 'johns' has outgrown its threshold" in calibrate.describe(report)


def test_cli_writes_the_plot(gallery_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "scores.png"
    assert main(["--data", str(gallery_dir), "calibrate", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "expected false matches per stranger seen" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000


def test_cli_refuses_an_empty_gallery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store(tmp_path / "data").close()
    assert main(["--data", str(tmp_path / "data"), "calibrate"]) == 1
    assert "needs enrolled templates" in capsys.readouterr().err
