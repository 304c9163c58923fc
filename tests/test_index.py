"""The template search index: changes, searches, persistence and every reason to rebuild."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.bench.scale import Faces, exact_top, run_scale
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.gallery.index import DEFAULT_M, IndexCorruptError, TemplateIndex, sidecar_path

DIM = 32
LOGGER = "face_watchlist.gallery.index"


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def batches(
    ids: np.ndarray, vectors: np.ndarray, size: int = 100
) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(ids), size):
            yield ids[start : start + size], vectors[start : start + size]

    return rows


def no_rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
    raise AssertionError("open() rebuilt an index it should have loaded")


def top_ids(index: TemplateIndex, vector: np.ndarray, k: int) -> list[int]:
    return [template_id for template_id, _ in index.search(vector, k)]


def test_error_class() -> None:
    assert issubclass(IndexCorruptError, FaceWatchlistError)


def test_add_search_remove_replace(rng: np.random.Generator) -> None:
    vectors = unit(rng, 50)
    index = TemplateIndex(DIM)
    index.add(np.arange(100, 150), vectors)
    assert len(index) == 50
    assert 100 in index
    assert np.int64(149) in index
    assert 99 not in index
    assert 150 not in index
    assert -1 not in index
    assert "100" not in index
    assert 1 << 70 not in index

    best = index.search(vectors[7], 5)
    assert best[0][0] == 107
    assert best[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    exact = (vectors @ vectors[7]).astype(np.float64)
    for template_id, similarity in best:
        assert similarity == pytest.approx(exact[template_id - 100], abs=1e-5)

    index.remove([107, 999, 107, -5, 1 << 70])  # absent, repeated and impossible ids are ignored
    assert len(index) == 49
    assert 107 not in index
    assert 107 not in top_ids(index, vectors[7], 10)

    index.add(np.array([108]), vectors[20:21])  # replace: 108 now sits where 120 is
    assert len(index) == 49
    assert set(top_ids(index, vectors[20], 2)) == {108, 120}
    assert index.search(vectors[8], 1)[0][0] != 108

    index.add(np.array([107]), vectors[7:8])  # a deleted id comes back
    assert len(index) == 50
    assert 107 in index
    assert top_ids(index, vectors[7], 1) == [107]


def test_duplicate_ids_in_one_batch_last_wins(rng: np.random.Generator) -> None:
    vectors = unit(rng, 3)
    index = TemplateIndex(DIM)
    index.add(np.array([5, 6, 5]), vectors)
    assert len(index) == 2
    best_id, best_similarity = index.search(vectors[2], 1)[0]
    assert best_id == 5
    assert best_similarity == pytest.approx(1.0, abs=1e-5)
    assert index.search(vectors[0], 1)[0][1] < 0.99  # vectors[0] was replaced


def test_grows_past_capacity(rng: np.random.Generator) -> None:
    vectors = unit(rng, 300)
    index = TemplateIndex(DIM, capacity=4)
    for start in range(0, 100, 10):
        index.add(np.arange(start, start + 10), vectors[start : start + 10])
    index.add(np.arange(100, 300), vectors[100:])  # one batch far past capacity
    assert len(index) == 300
    assert all(top_ids(index, vectors[i], 1) == [i] for i in range(0, 300, 7))


def test_k_larger_than_count_and_empty_index(rng: np.random.Generator) -> None:
    index = TemplateIndex(DIM)
    query = unit(rng, 1)[0]
    assert len(index) == 0
    assert index.search(query, 10) == []
    assert index.search_many(unit(rng, 3), 10) == [[], [], []]
    vectors = unit(rng, 3)
    index.add(np.array([1, 2, 3]), vectors)
    assert sorted(top_ids(index, query, 10)) == [1, 2, 3]
    assert index.search(query, 0) == []
    index.remove([2])
    assert sorted(top_ids(index, query, 10)) == [1, 3]
    assert [sorted(t for t, _ in r) for r in index.search_many(vectors, 5)] == [[1, 3]] * 3
    index.remove([1, 3])
    assert index.search(query, 10) == []


def test_search_survives_hnswlib_finding_too_few(rng: np.random.Generator) -> None:
    """hnswlib raises when it reaches fewer than k live entries (tombstones can cut the graph)."""

    class Flaky:
        def __init__(self, raw: object) -> None:
            self.raw = raw
            self.efs: list[int] = []

        def knn_query(self, data: np.ndarray, k: int, num_threads: int) -> tuple[np.ndarray, np.ndarray]:
            if k > 2:
                raise RuntimeError("Cannot return the results in a contiguous 2D array")
            return self.raw.knn_query(data, k=k, num_threads=num_threads)  # type: ignore[attr-defined, no-any-return]

        def set_ef(self, ef: int) -> None:
            self.efs.append(ef)
            self.raw.set_ef(ef)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self.raw, name)

    vectors = unit(rng, 100)
    index = TemplateIndex(DIM, ef_search=20)
    index.add(np.arange(100), vectors)
    flaky = Flaky(index._index)
    index._index = flaky
    assert top_ids(index, vectors[5], 10) == [5, top_ids(index, vectors[5], 2)[1]]  # fewer, not an error
    assert [len(r) for r in index.search_many(vectors[:3], 5)] == [2, 2, 2]
    assert flaky.efs[0] > 20
    assert flaky.efs[-1] == 20  # restored


def test_search_many_matches_search(rng: np.random.Generator) -> None:
    vectors = unit(rng, 500)
    index = TemplateIndex(DIM)
    index.add(np.arange(500), vectors)
    queries = unit(rng, 20)
    assert index.search_many(queries, 5) == [index.search(q, 5) for q in queries]


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        (np.arange(2), np.zeros((2, DIM + 1), np.float32), "shape"),
        (np.arange(2), np.full((2, DIM), np.nan, np.float32), "NaN"),
        (np.arange(2), np.full((2, DIM), 1.0, np.float32), "normalised"),
        (np.arange(3), None, "3 ids for 2 vectors"),
        (np.array([-1, 2]), None, "negative"),
        (np.array([0.5, 2.0]), None, "integer"),
    ],
)
def test_add_rejects_bad_input(
    rng: np.random.Generator, ids: np.ndarray, vectors: np.ndarray | None, message: str
) -> None:
    index = TemplateIndex(DIM)
    with pytest.raises(ValueError, match=message):
        index.add(ids, unit(rng, 2) if vectors is None else vectors)
    assert len(index) == 0


def test_search_rejects_bad_input(rng: np.random.Generator) -> None:
    index = TemplateIndex(DIM)
    index.add(np.arange(5), unit(rng, 5))
    with pytest.raises(ValueError, match="shape"):
        index.search(unit(rng, 1, DIM * 2)[0], 3)
    with pytest.raises(ValueError, match="normalised"):
        index.search(unit(rng, 1)[0] * 2, 3)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full(DIM, np.inf, np.float32), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(unit(rng, 1)[0], -1)
    with pytest.raises(ValueError, match="one vector"):
        index.search(unit(rng, 2), 3)


def test_deleted_ids_never_returned(rng: np.random.Generator) -> None:
    vectors = unit(rng, 2000)
    index = TemplateIndex(DIM)
    index.add(np.arange(2000), vectors)
    deleted = set(rng.choice(2000, size=1000, replace=False).tolist())
    index.remove(deleted)
    assert len(index) == 1000
    for result in index.search_many(vectors[:200], 50):
        assert len(result) == 50
        assert not deleted & {t for t, _ in result}
    everything = {t for t, _ in index.search(vectors[0], 5000)}  # k capped to the live count
    assert not everything & deleted
    assert len(everything) >= 990


def _recall_at_10(index: TemplateIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    ids = np.arange(1, len(vectors) + 1, dtype=np.int64)
    index.add(ids, vectors)
    truth, _ = exact_top(vectors, ids, queries, 10)
    found = index.search_many(queries, 10)
    return float(
        np.mean([len({t for t, _ in f} & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    )


def test_recall_on_5k_random_vectors() -> None:
    """Uniform random directions: the hardest case for a graph index, so at 32 dims here (at 128 the
    neighbours of a random point are all nearly as far, and 5k of them need ef ~ 400 for 0.99)."""
    rng = np.random.default_rng(3)
    assert _recall_at_10(TemplateIndex(DIM), unit(rng, 5000), unit(rng, 200)) >= 0.99


def test_recall_on_5k_face_like_vectors() -> None:
    """The scale benchmark's synthetic faces at 128 dims, mated and stranger queries."""
    faces = Faces(128, np.random.default_rng(4))
    vectors, _, centres = faces.gallery(5000)
    queries = np.concatenate([faces.samples(centres[:150]), faces.samples(faces.centres(50))])
    assert _recall_at_10(TemplateIndex(128), vectors, queries) >= 0.99


# -- persistence ----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray, np.ndarray]:
    """An index of 300 templates (ids 1..300, 10 and 11 deleted) saved with fingerprint "g1"."""
    vectors = unit(rng, 300)
    ids = np.arange(1, 301, dtype=np.int64)
    index = TemplateIndex(DIM, capacity=16)
    index.add(ids, vectors)
    index.remove([10, 11])
    path = tmp_path / "index" / "pack.hnsw"
    index.save(path, "g1")
    return path, ids, vectors


def test_save_open_round_trip(saved: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, vectors = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["pack.hnsw", "pack.hnsw.json"]  # no temp files
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["dim"] == DIM
    assert meta["count"] == 298
    assert meta["fingerprint"] == "g1"
    assert meta["deleted"] == [10, 11]
    index, rebuilt = TemplateIndex.open(path, DIM, "g1", no_rows)
    assert not rebuilt
    assert len(index) == 298
    assert 10 not in index
    assert 12 in index
    assert top_ids(index, vectors[0], 1) == [1]
    assert 10 not in top_ids(index, vectors[9], 20)
    # the loaded index keeps changing and saving
    index.add(np.array([10, 301]), vectors[[9, 0]])
    index.remove([1])
    assert len(index) == 299
    assert 10 in index
    assert 1 not in index
    index.save(path, "g2")
    again, rebuilt = TemplateIndex.open(path, DIM, "g2", no_rows)
    assert not rebuilt
    assert len(again) == 299
    assert 1 not in again
    assert 301 in again
    assert top_ids(again, vectors[0], 1) == [301]


def test_empty_index_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.hnsw"
    TemplateIndex(DIM).save(path, "g0")
    index, rebuilt = TemplateIndex.open(path, DIM, "g0", no_rows)
    assert not rebuilt
    assert len(index) == 0
    assert index.search(np.eye(DIM, dtype=np.float32)[0], 3) == []


def _missing(path: Path) -> None:
    path.unlink()


def _no_sidecar(path: Path) -> None:
    sidecar_path(path).unlink()


def _sidecar_garbage(path: Path) -> None:
    sidecar_path(path).write_bytes(b"\x00\xffnot json")


def _sidecar_wrong_shape(path: Path) -> None:
    sidecar_path(path).write_text("[1, 2, 3]")


def _sidecar_other_format(path: Path) -> None:
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "format": 999}))


def _sidecar_other_hnswlib(path: Path) -> None:
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "hnswlib": "0.1.0"}))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_inside(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[200:4000] = np.random.default_rng(0).integers(0, 256, 3800, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _garbage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:96] = b"\xff" * 96
    path.write_bytes(bytes(data))


def _garbage_header_sidecar_agrees(path: Path) -> None:
    """The worst case: the sidecar's checksum was made for the damaged file."""
    _garbage_header(path)
    from face_watchlist.gallery.index import _file_crc

    size, crc = _file_crc(path)
    meta = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**meta, "size": size, "crc32": crc}))


def _only_garbage(path: Path) -> None:
    path.write_bytes(b"garbage" * 1000)


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_missing, "no index file"),
        (_no_sidecar, "no sidecar"),
        (_sidecar_garbage, "unreadable sidecar"),
        (_sidecar_wrong_shape, "unreadable sidecar"),
        (_sidecar_other_format, "format version"),
        (_sidecar_other_hnswlib, "hnswlib"),
        (_truncated, "does not match"),
        (_garbage_inside, "does not match"),
        (_garbage_header, "does not match"),
        (_garbage_header_sidecar_agrees, "header"),
        (_only_garbage, "does not match"),
        (_empty_file, "does not match"),
    ],
)
def test_rebuilds_a_damaged_index(
    saved: tuple[Path, np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
    reason: str,
) -> None:
    path, ids, vectors = saved
    damage(path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    index, rebuilt = TemplateIndex.open(path, DIM, "g1", batches(ids, vectors))
    assert rebuilt
    assert reason in caplog.text
    assert len(index) == 300
    assert top_ids(index, vectors[9], 1) == [10]
    # and the rebuilt index was saved: the next start loads it
    again, rebuilt = TemplateIndex.open(path, DIM, "g1", no_rows)
    assert not rebuilt
    assert len(again) == 300


def test_rebuilds_when_fingerprint_changes(
    saved: tuple[Path, np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, ids, vectors = saved
    caplog.set_level(logging.INFO, logger=LOGGER)
    index, rebuilt = TemplateIndex.open(path, DIM, "g2", batches(ids[:100], vectors[:100]))
    assert rebuilt
    assert len(index) == 100
    assert "stale" in caplog.text
    assert "'g1'" in caplog.text
    assert "'g2'" in caplog.text


def test_rebuilds_when_dim_changes(
    saved: tuple[Path, np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, _, _ = saved
    caplog.set_level(logging.INFO, logger=LOGGER)
    other = unit(np.random.default_rng(1), 20, 64)
    index, rebuilt = TemplateIndex.open(path, 64, "g1", batches(np.arange(20), other))
    assert rebuilt
    assert len(index) == 20
    assert index.dim == 64
    assert "dimension 32" in caplog.text
    assert top_ids(index, other[3], 1) == [3]


def test_rebuilds_when_build_parameters_change(
    saved: tuple[Path, np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    path, ids, vectors = saved
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, rebuilt = TemplateIndex.open(path, DIM, "g1", batches(ids, vectors), m=8)
    assert rebuilt
    assert f"M={DEFAULT_M}" in caplog.text
    _, rebuilt = TemplateIndex.open(path, DIM, "g1", no_rows, m=8, ef_search=40)  # ef alone needs no rebuild
    assert not rebuilt


def test_rebuilds_to_compact_many_deletions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vectors = unit(np.random.default_rng(2), 3000, 8)
    index = TemplateIndex(8)
    index.add(np.arange(3000), vectors)
    index.remove(range(1200))
    path = tmp_path / "churn.hnsw"
    index.save(path, "g")
    caplog.set_level(logging.INFO, logger=LOGGER)
    again, rebuilt = TemplateIndex.open(path, 8, "g", batches(np.arange(1200, 3000), vectors[1200:], 500))
    assert rebuilt
    assert "compacting" in caplog.text
    assert len(again) == 1800


def test_open_saves_into_a_new_directory(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = unit(rng, 10)
    path = tmp_path / "a" / "b" / "pack.hnsw"
    _, rebuilt = TemplateIndex.open(path, DIM, "g", batches(np.arange(10), vectors), capacity=10)
    assert rebuilt
    assert path.exists()
    assert sidecar_path(path).exists()
    assert TemplateIndex.open(path, DIM, "g", no_rows)[1] is False


# -- the scale benchmark --------------------------------------------------------------------


def test_run_scale_small(tmp_path: Path) -> None:
    args = argparse.Namespace(templates=3000, dim=32, queries=200, seed=1, threads=2, workdir=tmp_path)
    result = run_scale(args)
    for key in (
        "templates",
        "dim",
        "build_s",
        "save_s",
        "load_s",
        "rss_mb",
        "raw_vectors_mb",
        "memory_ratio",
        "search_ms_p50",
        "search_ms_p99",
        "recall_at_1",
        "recall_at_10",
        "m",
        "ef_construction",
        "ef_search",
    ):
        assert key in result, key
    assert result["templates"] == 3000
    assert result["dim"] == 32
    assert result["raw_vectors_mb"] == pytest.approx(3000 * 32 * 4 / 1e6, abs=0.1)
    assert 0 < result["build_s"] < 60
    assert 0 < result["load_s"] < 10
    assert result["save_s"] >= 0
    assert 0 < result["rss_mb"] < 100
    assert result["memory_ratio"] > 0
    assert 0 < result["search_ms_p50"] <= result["search_ms_p99"] < 100
    assert result["recall_at_10"] >= 0.95
    assert result["recall_at_1"] >= 0.95
    assert json.dumps(result)  # JSON-ready
    assert (tmp_path / "scale-3000x32.hnsw").exists()
