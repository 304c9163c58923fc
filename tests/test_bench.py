"""The LFW protocol functions, and the benchmark commands end to end on the copied test photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.bench import lfw
from face_watchlist.cli import main
from face_watchlist.errors import FaceWatchlistError


def test_view1_layout_is_one_fold() -> None:
    folds = lfw.parse_pairs("2\nAl\t1\t2\nAl 1 Bo 3\n")
    assert folds == [[lfw.Pair(("Al", 1), ("Al", 2), True), lfw.Pair(("Al", 1), ("Bo", 3), False)]]


def test_view2_layout_splits_folds() -> None:
    text = "2 1\nA 1 2\nA 1 B 1\nC 1 2\nC 1 D 1\n"
    folds = lfw.parse_pairs(text)
    assert [[p.same for p in f] for f in folds] == [[True, False], [True, False]]
    assert folds[1][0].a == ("C", 1)


@pytest.mark.parametrize(
    "text",
    ["", "3\nA 1 2\n", "x\nA 1 2\n", "1\nA one 2\n", "1\nA 1 2 3 4 5\n", "2 2\nA 1 2\n", "1 2 3\nA 1 2\n"],
)
def test_bad_pair_files_are_refused(text: str) -> None:
    with pytest.raises(FaceWatchlistError):
        lfw.parse_pairs(text)


def test_best_threshold_separates_separable_scores() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3])
    same = np.array([True, True, True, False, False, False])
    threshold = lfw.best_threshold(scores, same)
    assert 0.3 < threshold < 0.7
    assert lfw.accuracy(scores, same, threshold) == 1.0


def test_tar_at_far_counts_false_accepts() -> None:
    impostors = np.linspace(0.0, 0.99, 100)  # 100 impostor scores
    genuine = np.array([0.5, 0.95, 0.985, 0.999])
    scores = np.concatenate([genuine, impostors])
    same = np.concatenate([np.ones(4, bool), np.zeros(100, bool)])
    tar, threshold = lfw.tar_at_far(scores, same, 0.01)  # one false accept allowed
    assert np.sum(impostors > threshold) <= 1
    assert tar == 0.5  # 0.985 and 0.999 are above the second-highest impostor (0.98)
    tar, threshold = lfw.tar_at_far(scores, same, 0.001)  # below 1/100: no false accept
    assert threshold == pytest.approx(0.99)
    assert tar == 0.25


def test_cross_validation_judges_each_fold_on_the_others() -> None:
    good = (np.array([0.9, 0.1]), np.array([True, False]))
    flipped = (np.array([0.1, 0.9]), np.array([True, False]))  # a fold the others can't explain
    mean, std, thresholds = lfw.cross_validate([good, good, good, flipped])
    assert mean == pytest.approx(0.75)  # the good folds are judged right, the odd one wrong
    assert std > 0
    assert len(thresholds) == 4


@pytest.fixture
def mini_lfw(data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """dlib's johns laid out like LFW (<name>/<nnnn>.jpg) with a View 1 pair file."""
    images = tmp_path / "images"
    source = data_dir / "faces" / "dlib_johns" / "images"
    names = sorted(p.name for p in source.iterdir())
    for name in names:
        for n, photo in enumerate(sorted((source / name).glob("*.jpg"))[:3], start=1):
            (images / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, images / name / f"{n:04d}.jpg")
    same = [f"{name}\t1\t2" for name in names] + [f"{name}\t2\t3" for name in names]
    diff = [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1], strict=True)]
    diff += [f"{a}\t3\t{b}\t3" for a, b in zip(names, names[2:] + names[:2], strict=True)]
    diff += ["Nobody_Here\t1\tJohn_Salley\t1"]  # a missing image: skipped and reported
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{len(same) + len(diff)}\n" + "\n".join(same + diff) + "\n")
    return pairs, images


def test_bench_verify_reports_the_required_keys(
    mini_lfw: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs, images = mini_lfw
    out = tmp_path / "report.json"
    args = ["bench", "verify", "--pairs", str(pairs), "--tune", str(pairs), "--images", str(images)]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    for key in ("accuracy", "accuracy_std", "tar_at_far", "images", "no_face", "images_per_second"):
        assert key in report
    assert set(report["tar_at_far"]) == {"0.01", "0.001"}
    assert report["accuracy"] == 1.0  # five distinct people, clean crops
    assert report["images"] == 15
    assert report["skipped_pairs"] == 1
    assert report["missing_images"] == ["Nobody_Here/0001"]


def test_bench_verify_with_folds(mini_lfw: tuple[Path, Path], tmp_path: Path) -> None:
    pairs, images = mini_lfw
    lines = pairs.read_text().splitlines()[1:]
    same, diff = lines[:10], lines[10:20]
    view2 = tmp_path / "view2.txt"
    view2.write_text("2 5\n" + "\n".join(same[:5] + diff[:5] + same[5:] + diff[5:]) + "\n")
    out = tmp_path / "report.json"
    assert main(["bench", "verify", "--pairs", str(view2), "--images", str(images), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["protocol"] == "2-fold cross-validation"
    assert report["accuracy"] == 1.0
    assert report["accuracy_std"] == 0.0


def test_bench_verify_missing_pair_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "verify", "--pairs", str(tmp_path / "nope.txt"), "--images", str(tmp_path)])
    assert code == 1
    assert "nope.txt" in capsys.readouterr().err


def test_bench_sizes_curve(mini_lfw: tuple[Path, Path], tmp_path: Path) -> None:
    _, images = mini_lfw
    out, plot = tmp_path / "sizes.json", tmp_path / "sizes.png"
    args = [
        "bench",
        "sizes",
        "--images",
        str(images),
        "--people",
        "5",
        "--json",
        str(out),
        "--plot",
        str(plot),
    ]
    assert main(args) == 0
    rows = {r["face_px"]: r for r in json.loads(out.read_text())["sizes"]}
    assert list(rows) == [16, 24, 32, 48, 64, 96, 128]
    assert rows[96]["detection_rate"] == 1.0
    assert rows[96]["same_person_mean"] > rows[96]["different_person_mean"] + 0.3
    assert rows[16]["detection_rate"] <= rows[96]["detection_rate"]
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bench_speed_reports_overhead(mini_lfw: tuple[Path, Path], tmp_path: Path) -> None:
    _, images = mini_lfw
    out = tmp_path / "speed.json"
    assert (
        main(
            ["bench", "speed", "--images", str(images), "--count", "10", "--rounds", "1", "--json", str(out)]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["images"] == 10
    assert report["faces"] >= 10
    assert report["overhead_ratio"] > 0.5  # the pipeline cannot be much faster than its own models
    assert report["images_per_second"] > 0
