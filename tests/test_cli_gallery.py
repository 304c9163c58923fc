"""The gallery commands through `face_watchlist.cli.main` on real photos and real SQLite files:
lists, people, enroll, import, match and reembed, with their JSON outputs and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import zipfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from face_watchlist.cli import main
from face_watchlist.faces.packs import PACKS
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import MIGRATIONS, Store

DATA = Path(__file__).resolve().parent / "data"
KNN = DATA / "faces/face_recognition_knn"
JOHNS = DATA / "faces/dlib_johns/images"
KNN_PEOPLE = ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]


class Cli:
    """`face-watchlist --data DATA --model-dir MODELS ...`, output captured."""

    def __init__(self, data: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data, self.model_dir, self.capsys = data, model_dir, capsys

    def __call__(self, *argv: str | Path, pack: str | None = None) -> tuple[int, str, str]:
        options = ["--data", str(self.data), "--model-dir", str(self.model_dir)]
        if pack:
            options += ["--pack", pack]
        code = main([*options, *(str(a) for a in argv)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str | Path, pack: str | None = None) -> Any:
        code, out, err = self(*argv, "--json", pack=pack)
        assert code == 0, err
        return json.loads(out)

    def fails(self, *argv: str | Path, pack: str | None = None) -> str:
        """The one line a user error prints (exit 1, no traceback)."""
        code, _, err = self(*argv, pack=pack)
        assert code == 1, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("face-watchlist: error: ")
        return lines[0]


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A data directory with the knn enrolment photos imported onto `staff`, and the report."""
    data = tmp_path_factory.mktemp("cli") / "data"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        options = ["--data", str(data), "--model-dir", str(model_dir)]
        code = main([*options, "import", str(KNN / "enroll"), "--list", "staff", "--json"])
    assert code == 0
    return data, json.loads(out.getvalue())


@pytest.fixture
def cli(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """On an empty data directory."""
    return Cli(tmp_path / "data", model_dir, capsys)


@pytest.fixture
def shared(enrolled: tuple[Path, dict[str, Any]], model_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """On the shared enrolled directory: for commands that change nothing."""
    return Cli(enrolled[0], model_dir, capsys)


@pytest.fixture
def copy(
    enrolled: tuple[Path, dict[str, Any]], tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """On a copy of the enrolled directory: for commands that change it."""
    shutil.copytree(enrolled[0], tmp_path / "data")
    return Cli(tmp_path / "data", model_dir, capsys)


def with_store(data: Path, check: Callable[[Store], Any]) -> Any:
    store = Store(data)
    try:
        return check(store)
    finally:
        store.close()


def index_agrees(data: Path, pack: str = "opencv-zoo") -> tuple[int, int]:
    """(templates in the store, templates in the reopened index)."""
    return with_store(data, lambda s: (len(s.templates(pack)), len(Gallery(s, PACKS[pack]).index)))


# lists --------------------------------------------------------------------------------------


def test_lists(cli: Cli) -> None:
    assert cli.json("lists") == []
    _, out, _ = cli("lists")
    assert "no lists yet" in out
    assert cli("lists", "add", "intruders")[0] == 0
    assert cli("lists", "add", "staff", "--kind", "known", "--threshold", "0.5", "--margin", "0.1")[0] == 0
    rows = {r["name"]: r for r in cli.json("lists")}
    assert rows["intruders"] == {
        "name": "intruders",
        "kind": "watch",
        "threshold": None,
        "margin": None,
        "policy": "review_first",
        "schedule": None,
        "people": 0,
        "effective_threshold": PACKS["opencv-zoo"].thresholds.threshold,
        "effective_margin": PACKS["opencv-zoo"].thresholds.margin,
    }
    assert rows["staff"]["kind"] == "known"
    assert rows["staff"]["policy"] == "immediate"
    assert cli("lists", "set", "staff", "--schedule", "mon-fri 07:00-17:00")[0] == 0
    assert {r["name"]: r for r in cli.json("lists")}["staff"]["schedule"] == "mon-fri 07:00-17:00"
    code, out, err = cli("lists", "set", "staff", "--schedule", "weekdays")
    assert code == 1
    assert "mon-fri" in err
    assert (rows["staff"]["threshold"], rows["staff"]["effective_threshold"]) == (0.5, 0.5)
    assert (rows["staff"]["margin"], rows["staff"]["effective_margin"]) == (0.1, 0.1)

    assert cli("lists", "set", "intruders", "--threshold", "0.6", "--policy", "immediate")[0] == 0
    rows = {r["name"]: r for r in cli.json("lists")}
    assert (rows["intruders"]["threshold"], rows["intruders"]["effective_threshold"]) == (0.6, 0.6)
    assert rows["intruders"]["policy"] == "immediate"
    assert rows["intruders"]["margin"] is None  # untouched

    assert "a list named 'staff' already exists" in cli.fails("lists", "add", "staff")
    assert "no list named 'nope'" in cli.fails("lists", "set", "nope", "--threshold", "0.5")
    assert "no list named 'nope'" in cli.fails("lists", "remove", "nope")
    assert cli("lists", "remove", "intruders")[0] == 0
    assert [r["name"] for r in cli.json("lists")] == ["staff"]


def test_lists_set_margin_zero(cli: Cli) -> None:
    cli("lists", "add", "staff", "--margin", "0.1")
    assert cli("lists", "set", "staff", "--margin", "0")[0] == 0
    assert cli.json("lists")[0]["margin"] == 0.0


def test_lists_set_rename(cli: Cli) -> None:
    cli("lists", "add", "staff")
    assert cli("lists", "set", "staff", "--rename", "teachers")[0] == 0
    assert [r["name"] for r in cli.json("lists")] == ["teachers"]


def test_an_unusable_database_is_a_one_line_error(cli: Cli) -> None:
    cli.data.mkdir()
    (cli.data / "gallery.sqlite3").write_bytes(b"\x00garbage" * 1000)
    assert "cannot open the gallery database" in cli.fails("lists")
    (cli.data / "gallery.sqlite3").unlink()
    Store(cli.data).close()
    with closing(sqlite3.connect(cli.data / "gallery.sqlite3")) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    assert "upgrade face-watchlist" in cli.fails("people")


# enroll, people -----------------------------------------------------------------------------


def test_enroll_creates_the_list(cli: Cli) -> None:
    photos = [KNN / "enroll/obama/obama.jpg", KNN / "enroll/obama/obama2.jpg"]
    report = cli.json("enroll", "--list", "visitors", "--name", "Barack", "--external-id", "B-44", *photos)
    assert (report["enrolled"], report["already_enrolled"], report["skipped"]) == (2, 0, 0)
    (row,) = cli.json("lists")
    assert (row["name"], row["kind"], row["policy"], row["people"]) == (
        "visitors",
        "watch",
        "review_first",
        1,
    )
    (person,) = cli.json("people")
    assert person["name"] == "Barack"
    assert person["external_id"] == "B-44"
    assert (person["lists"], person["photos"], person["templates"]) == (["visitors"], 2, 2)
    again = cli.json("enroll", "--list", "visitors", "--name", "Barack", *photos)
    assert (again["enrolled"], again["already_enrolled"]) == (0, 2)
    # nothing enrolled: exit 1, with the reason
    code, out, _ = cli("enroll", "--list", "visitors", "--name", "Joe", KNN / "probe/obama_and_biden.jpg")
    assert code == 1
    assert "several faces" in out


def test_people(copy: Cli) -> None:
    rows = copy.json("people")
    assert [r["name"] for r in rows] == KNN_PEOPLE
    assert set(rows[0]) == {"id", "name", "external_id", "lists", "photos", "templates"}
    ids = {r["name"]: r["id"] for r in rows}
    obama = next(r for r in rows if r["name"] == "obama")
    assert (obama["lists"], obama["photos"], obama["templates"], obama["external_id"]) == (
        ["staff"],
        2,
        2,
        None,
    )
    assert len(copy.json("people", "--list", "staff")) == 5

    assert copy("people", "rename", str(ids["obama"]), "Barack Obama")[0] == 0
    # move with --from: onto visitors (created), off staff, photos kept
    assert copy("people", "move", str(ids["obama"]), "--to", "visitors", "--from", "staff")[0] == 0
    # move without --from: on both
    assert copy("people", "move", str(ids["biden"]), "--to", "visitors")[0] == 0
    rows = {r["id"]: r for r in copy.json("people")}
    assert rows[ids["obama"]]["name"] == "Barack Obama"
    assert (rows[ids["obama"]]["lists"], rows[ids["obama"]]["templates"]) == (["visitors"], 2)
    assert rows[ids["biden"]]["lists"] == ["staff", "visitors"]
    assert [r["name"] for r in copy.json("people", "--list", "visitors")] == ["Barack Obama", "biden"]

    # off one list: kept; off the last one, or removed: deleted with the photos
    code, out, _ = copy("people", "remove", str(ids["biden"]), "--list", "staff")
    assert (code, out.strip()) == (0, f"person {ids['biden']} removed from staff")
    assert "biden" not in [r["name"] for r in copy.json("people", "--list", "staff")]
    assert ids["biden"] in {r["id"] for r in copy.json("people")}
    alex_photos = with_store(
        copy.data, lambda s: [s.photos_dir / r["path"] for r in s.photos(ids["alex_lacamoire"])]
    )
    assert alex_photos
    assert all(p.is_file() for p in alex_photos)
    code, out, _ = copy("people", "remove", str(ids["alex_lacamoire"]))
    assert (code, out.strip()) == (0, f"person {ids['alex_lacamoire']} removed with their photos")
    assert not any(p.exists() for p in alex_photos)
    assert ids["alex_lacamoire"] not in {r["id"] for r in copy.json("people")}
    assert "no person with id 999" in copy.fails("people", "remove", "999")
    assert "no person with id 999" in copy.fails("people", "rename", "999", "X")
    assert "no list named 'nope'" in copy.fails("people", "remove", str(ids["obama"]), "--list", "nope")
    templates, in_index = index_agrees(copy.data)
    assert templates == in_index == 8


# import -------------------------------------------------------------------------------------


def test_import_folder_report(enrolled: tuple[Path, dict[str, Any]]) -> None:
    _, report = enrolled
    assert set(report) == {
        "enrolled",
        "already_enrolled",
        "skipped",
        "skipped_items",
        "skipped_by_reason",
        "bad_rows",
        "removed",
        "removed_people",
    }
    assert (report["enrolled"], report["already_enrolled"]) == (9, 0)
    assert (report["skipped"], report["skipped_by_reason"], report["bad_rows"], report["removed"]) == (
        0,
        {},
        [],
        [],
    )


def test_import_source_errors(cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.jpg", b"x")
    assert "needs its registry CSV: --csv FILE" in cli.fails("import", archive, "--list", "staff")
    other = tmp_path / "photos.txt"
    other.write_text("x")
    assert "expected a folder of <person>/*.jpg" in cli.fails("import", other, "--list", "staff")
    assert not (cli.data / "gallery.sqlite3").exists()  # refused before touching anything


def test_import_registry_csv_and_zip(cli: Cli, tmp_path: Path) -> None:
    people = sorted(p for p in JOHNS.iterdir() if p.is_dir())
    first = [sorted(p.glob("*.jpg"))[0] for p in people]
    folder = tmp_path / "photos"
    folder.mkdir()
    for n, photo in enumerate(first[:3]):
        shutil.copy(photo, folder / f"{n}.jpg")
    csv_path = tmp_path / "registry.csv"
    csv_path.write_text("id,name,photo\nR0,Ann,0.jpg\nR1,Bob,1.jpg\nR1,Bob Again,2.jpg\nR2,Cid,../x.jpg\n")
    report = cli.json("import", csv_path, "--photos", folder, "--list", "pupils")
    assert report["enrolled"] == 2
    assert report["bad_rows"] == [
        "line 4: id 'R1' appears twice",
        "line 5: photo path '../x.jpg' must be relative, inside the photo folder or zip",
    ]
    _, out, _ = cli("import", csv_path, "--photos", folder, "--list", "pupils")  # text report
    assert "bad row: line 4: id 'R1' appears twice" in out

    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for n, photo in enumerate(first):
            z.write(photo, f"{n}.jpg")
    replacement = tmp_path / "today.csv"
    replacement.write_text("id,name,photo\nR0,Ann,0.jpg\nR3,Dan,3.jpg\nR4,Eve,missing.jpg\n")
    report = cli.json("import", archive, "--csv", replacement, "--list", "pupils", "--replace")
    assert (report["enrolled"], report["already_enrolled"]) == (1, 1)
    assert report["skipped_by_reason"] == {"unreadable": 1}
    assert report["skipped_items"][0]["source"] == "today.csv:4"
    assert report["removed"] == ["Bob (R1)"]
    assert {(r["external_id"], r["name"]) for r in cli.json("people")} == {("R0", "Ann"), ("R3", "Dan")}


# match --------------------------------------------------------------------------------------

MATCH_KEYS = {"decision", "person", "list", "score", "margin", "runner_up", "false_match_rate", "reason"}


def test_match_json(shared: Cli) -> None:
    payload = shared.json("match", KNN / "probe/obama1.jpg")
    assert payload["pack"] == "opencv-zoo"
    (face,) = payload["faces"]
    assert set(face) >= MATCH_KEYS
    assert (face["decision"], face["reason"], face["person"], face["list"]) == (
        "match",
        "matched",
        "obama",
        "staff",
    )
    assert face["list_kind"] == "watch"
    assert face["score"] >= PACKS["opencv-zoo"].thresholds.threshold
    assert face["margin"] >= PACKS["opencv-zoo"].thresholds.margin
    assert face["runner_up"]["person"] != "obama"
    assert face["runner_up"]["score"] == pytest.approx(face["score"] - face["margin"], abs=2e-4)
    assert 0 < face["false_match_rate"] < 1e-3
    assert face["quality_issues"] == []
    assert face["suppressed_by_rejection"] == []

    payload = shared.json("match", KNN / "probe/kit_with_rose.jpg")
    assert {f["person"] for f in payload["faces"]} == {"kit_harington", "rose_leslie"}

    stranger = sorted((JOHNS / "John_Simm").glob("*.jpg"))[0]
    (face,) = shared.json("match", stranger)["faces"]
    assert (face["decision"], face["reason"], face["person"], face["list"]) == (
        "nobody",
        "below_threshold",
        None,
        None,
    )
    assert face["closest"] in KNN_PEOPLE
    _, out, _ = shared("match", stranger)
    assert out.startswith("face 0: nobody (below threshold; closest ")


def test_match_without_a_face(shared: Cli, tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((240, 320, 3), 128, np.uint8))
    assert shared.fails("match", grey).endswith(f"{grey}: no face found")
    assert "no such file" in shared.fails("match", tmp_path / "missing.jpg")


# reembed, lists remove ----------------------------------------------------------------------


def test_reembed_with_another_pack(copy: Cli) -> None:
    code, out, err = copy("reembed", pack="scrfd-sface")
    assert code == 0, err
    assert out.splitlines()[0] == "re-embedded 9 photos with scrfd-sface; 0 failed"
    assert index_agrees(copy.data, "scrfd-sface") == (9, 9)
    assert index_agrees(copy.data, "opencv-zoo") == (9, 9)  # the old pack's templates are kept
    payload = copy.json("match", KNN / "probe/obama1.jpg", pack="scrfd-sface")
    assert payload["pack"] == "scrfd-sface"
    (face,) = payload["faces"]
    assert (face["decision"], face["person"], face["list"]) == ("match", "obama", "staff")


def test_reembed_again_keeps_the_index_in_step(copy: Cli) -> None:
    assert copy("reembed")[0] == 0
    templates, in_index = index_agrees(copy.data)
    assert in_index == templates == 9


def test_lists_remove_deletes_people_on_no_other_list(copy: Cli) -> None:
    ids = {r["name"]: r["id"] for r in copy.json("people")}
    assert copy("people", "move", str(ids["biden"]), "--to", "visitors")[0] == 0
    assert copy("lists", "remove", "staff")[0] == 0
    assert [r["name"] for r in copy.json("lists")] == ["visitors"]
    assert [(r["name"], r["lists"]) for r in copy.json("people")] == [("biden", ["visitors"])]
    files = [p for p in (copy.data / "photos").rglob("*") if p.is_file()]
    assert {p.parent.name for p in files} == {str(ids["biden"])}
    assert index_agrees(copy.data) == (2, 2)
