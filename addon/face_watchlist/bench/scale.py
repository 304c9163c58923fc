"""`face-watchlist bench scale`: the search index at gallery sizes no school has, on synthetic faces.

The gallery is synthetic but shaped like one (seeded, so runs repeat):

* identities with 1-8 templates each (uniform, mean 4.5), as enrolment gives a few photos a person;
* an identity's centre is drawn from a Gaussian with a power-law variance spectrum (variance of the
  i-th axis ~ i^-0.5, i = 1..dim), then L2-normalised. Real embeddings are not isotropic: a few
  directions carry more variance than the rest. With this spectrum two strangers' cosines spread
  around 0 with a standard deviation of ~0.11 at 128 dims (~0.06 at 512), about as impostor scores
  of face models do (uniform random directions: 0.088 and 0.044);
* a template (or a probe) is its centre plus isotropic Gaussian noise of norm ~0.65, normalised:
  two photos of one person score ~0.7, a photo against its own centre ~0.84.

Queries: 70% mated (a fresh noisy sample of an enrolled identity: a new photo of someone on the
list), 20% strangers (a fresh identity from the same distribution, not enrolled) and 10% uniform
random unit vectors. The last two are the hard case for a graph index: their nearest neighbours are
all nearly equally far, and a watchlist sees mostly strangers. Recall is reported per kind too,
and for mated queries whether the person's templates came back (what a decision needs).

Calibration (done once by hand, not by this module): SFace embeddings of LFW (13,232 photos from
../shared/data/lfw; 1,000 held out as queries) against this generator at the same gallery sizes,
M=16, recall@10 at ef 64/128/256: 1.5k real 0.980/0.998/1.000, synthetic 0.994/1.000/1.000;
12k real 0.901/0.962/0.993, synthetic 0.917/0.969/0.994. Real genuine/impostor scores were
0.69 +- 0.08 / 0.09 +- 0.09. So recall here is, if anything, slightly optimistic for real faces;
centres drawn with more structure (groups, a shared mean direction) made the index's job easier,
not harder, and uniform random galleries are far harder than real faces (0.60 at ef 128, 12k).

Search is timed one query at a time, single-threaded, through `TemplateIndex.search` (validation
included), after a warm-up. Recall is against exact search (a matrix product over every template,
in chunks). Loading and its memory are measured in a fresh Python process: VmRSS from
/proc/self/status before and after `TemplateIndex.open`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from face_watchlist.gallery import index as index_module
from face_watchlist.gallery.index import TemplateIndex

TEMPLATES_PER_IDENTITY = (1, 8)
SPECTRUM_EXPONENT = 0.5
NOISE = 0.65
MATED_SHARE = 0.7
STRANGER_SHARE = 0.2  # the rest are uniform random
K = 10
FINGERPRINT = "bench-scale"
_BATCH = 100_000

_LOAD_SCRIPT = """
import json, sys, time
from pathlib import Path


def rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


import hnswlib, numpy
from face_watchlist.gallery.index import TemplateIndex


def rows():
    raise RuntimeError("the saved index did not load; open() tried to rebuild it")


path, dim, fingerprint, params = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
before = rss_bytes()
start = time.perf_counter()
index, rebuilt = TemplateIndex.open(path, dim, fingerprint, rows, **params)
load_s = time.perf_counter() - start
after = rss_bytes()
result = {"load_s": load_s, "rebuilt": rebuilt, "count": len(index), "before": before, "after": after}
print(json.dumps(result))
"""


def _unit(rows: np.ndarray) -> np.ndarray:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


class Faces:
    """The synthetic face-embedding distribution described in the module docstring."""

    def __init__(self, dim: int, rng: np.random.Generator) -> None:
        self.dim = dim
        self.rng = rng
        variance = np.arange(1, dim + 1, dtype=np.float64) ** -SPECTRUM_EXPONENT
        self.scale = np.sqrt(variance / variance.sum()).astype(np.float32)

    def centres(self, count: int) -> np.ndarray:
        return _unit(self.rng.standard_normal((count, self.dim), dtype=np.float32) * self.scale)

    def samples(self, centres: np.ndarray) -> np.ndarray:
        """One noisy sample per row of `centres` (a photo of that identity)."""
        noise = self.rng.standard_normal(centres.shape, dtype=np.float32) * np.float32(
            NOISE / np.sqrt(self.dim)
        )
        return _unit(centres + noise)

    def gallery(self, templates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors (templates, dim), owner identity per template, identity centres)."""
        low, high = TEMPLATES_PER_IDENTITY
        sizes = self.rng.integers(low, high + 1, size=templates // low + 1)
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), templates)) + 1]
        owners = np.repeat(np.arange(len(sizes)), sizes)[:templates]
        centres = self.centres(len(sizes))
        vectors = np.empty((templates, self.dim), dtype=np.float32)
        for start in range(0, templates, _BATCH):
            stop = min(templates, start + _BATCH)
            vectors[start:stop] = self.samples(centres[owners[start:stop]])
        return vectors, owners, centres


def _queries(faces: Faces, centres: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, identity per query: its index in `centres` if mated, -1 stranger, -2 uniform random)."""
    mated = round(count * MATED_SHARE)
    strangers = round(count * STRANGER_SHARE)
    uniform = count - mated - strangers
    who = faces.rng.integers(0, len(centres), size=mated)
    parts = [
        faces.samples(centres[who]),
        faces.samples(faces.centres(strangers)),
        _unit(faces.rng.standard_normal((uniform, faces.dim), dtype=np.float32)),
    ]
    return np.concatenate(parts), np.concatenate([who, np.full(strangers, -1), np.full(uniform, -2)])


def exact_top(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, similarities) of each query's k most similar vectors, best first, by brute force in chunks."""
    k = min(k, len(vectors))
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        scores = queries @ vectors[start : start + chunk].T
        keep = min(k, scores.shape[1])
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_ids = np.concatenate([best_ids, ids[start + top]], axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_ids = np.take_along_axis(best_ids, order, axis=1)
    return best_ids, best_scores


def _load_in_fresh_process(path: Path, dim: int, params: dict[str, int]) -> dict[str, Any]:
    package_root = str(Path(index_module.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(path), str(dim), FINGERPRINT, json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loading the index in a fresh process failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _params(args: argparse.Namespace) -> dict[str, int]:
    given = vars(args)
    return {
        "m": int(given.get("m") or index_module.DEFAULT_M),
        "ef_construction": int(given.get("ef_construction") or index_module.DEFAULT_EF_CONSTRUCTION),
        "ef_search": int(given.get("ef_search") or index_module.DEFAULT_EF_SEARCH),
    }


def _timed_search(index: TemplateIndex, queries: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Top-K ids per query and each search's time in ms, one query at a time, after a warm-up."""
    for query in queries[: min(100, len(queries))]:
        index.search(query, K)
    found: list[list[int]] = []
    times_ms = np.empty(len(queries))
    for i, query in enumerate(queries):
        start = time.perf_counter()
        result = index.search(query, K)
        times_ms[i] = (time.perf_counter() - start) * 1000
        found.append([template_id for template_id, _ in result])
    return found, times_ms


def _quality(
    found: list[list[int]], times_ms: np.ndarray, truth: np.ndarray, owners: np.ndarray, who: np.ndarray
) -> dict[str, Any]:
    """Search time and recall against exact search; for mated queries, whether the person was found.

    `owners[i]` is the identity of template id i + 1; `who` the identity per query (< 0: not mated).
    """
    k = truth.shape[1]
    hits = np.array([np.isin(t, f) for f, t in zip(found, truth, strict=True)]).reshape(truth.shape)
    top1 = np.array([bool(f) and f[0] == t[0] for f, t in zip(found, truth, strict=True)])
    overlap = hits.sum(axis=1) / k
    kinds = {"mated": who >= 0, "stranger": who == -1, "random": who == -2}
    mated = np.flatnonzero(who >= 0)
    # the identity's templates among the exact top-k (all of them: at most 8 < k, and ~0.7 against
    # ~0.45 for the best stranger in a million), and how many of those the search returned
    mates = [(truth[q][owners[truth[q] - 1] == who[q]], set(found[q])) for q in mated]
    result = {
        "search_ms_p50": round(float(np.percentile(times_ms, 50)), 3),
        "search_ms_p99": round(float(np.percentile(times_ms, 99)), 3),
        "search_ms_mean": round(float(times_ms.mean()), 3),
        "recall_at_1": round(float(top1.mean()), 4),
        "recall_at_10": round(float(overlap.mean()), 4),
        **{
            f"recall_at_10_{name}": round(float(overlap[rows].mean()), 4)
            for name, rows in kinds.items()
            if rows.any()
        },
    }
    if mates:
        result |= {
            # the person's best template came back (so the person's score is exact)
            "mated_best_found": round(float(np.mean([bool(len(m)) and m[0] in f for m, f in mates])), 4),
            # at least one of the person's templates came back (so the person is a candidate)
            "mated_person_found": round(float(np.mean([any(t in f for t in m) for m, f in mates])), 4),
            "mated_templates_found": round(
                sum(sum(t in f for t in m) for m, f in mates) / max(1, sum(len(m) for m, _ in mates)), 4
            ),
        }
    return result


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    """Build, save, load and search an index of `args.templates` synthetic templates; the figures as a dict.

    args: templates, dim, queries (1000), seed, threads (2), workdir (None: a temporary directory);
    optional m, ef_construction, ef_search (the index defaults), and sweep: ef values to measure
    search time and recall at too (reopening the saved index with each; no rebuild).
    """
    templates, dim = int(args.templates), int(args.dim)
    queries_count = int(getattr(args, "queries", None) or 1000)
    threads = int(getattr(args, "threads", None) or 2)
    if templates < 1 or dim < 2 or queries_count < 1:
        raise ValueError("templates and queries must be positive and dim at least 2")
    params = _params(args)
    faces = Faces(dim, np.random.default_rng(getattr(args, "seed", 0)))
    vectors, owners, centres = faces.gallery(templates)
    ids = np.arange(1, templates + 1, dtype=np.int64)  # SQLite rowids start at 1
    queries, who = _queries(faces, centres, queries_count)
    truth, _ = exact_top(vectors, ids, queries, K)

    with ExitStack() as stack:
        workdir = getattr(args, "workdir", None)
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-scale-")))
        path = Path(workdir) / f"scale-{templates}x{dim}.hnsw"

        start = time.perf_counter()
        built = TemplateIndex(dim, capacity=templates, threads=threads, **params)
        for first in range(0, templates, _BATCH):
            built.add(ids[first : first + _BATCH], vectors[first : first + _BATCH])
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        built.save(path, FINGERPRINT)
        save_s = time.perf_counter() - start
        del built
        file_mb = path.stat().st_size / 1e6
        del vectors  # only the index from here on

        fresh = _load_in_fresh_process(path, dim, {**params, "threads": threads})
        if fresh["rebuilt"] or fresh["count"] != templates:
            raise RuntimeError(f"the saved index did not load as saved: {fresh}")

        def reopen(ef: int) -> TemplateIndex:
            index, rebuilt = TemplateIndex.open(
                path, dim, FINGERPRINT, lambda: iter(()), threads=threads, **{**params, "ef_search": ef}
            )
            if rebuilt:
                raise RuntimeError("the saved index did not load in this process")
            return index

        index = reopen(params["ef_search"])
        quality = _quality(*_timed_search(index, queries), truth, owners, who)
        del index
        sweep = []
        for ef in getattr(args, "sweep", None) or ():
            index = reopen(int(ef))
            swept = _quality(*_timed_search(index, queries), truth, owners, who)
            del index
            sweep.append({"ef_search": int(ef), **swept})

    raw_mb = templates * dim * 4 / 1e6
    rss_mb = (fresh["after"] - fresh["before"]) / 1e6 if fresh["before"] and fresh["after"] else None
    result: dict[str, Any] = {
        "templates": templates,
        "dim": dim,
        "queries": len(queries),
        "threads": threads,
        **params,
        "build_s": round(build_s, 2),
        "save_s": round(save_s, 2),
        "load_s": round(float(fresh["load_s"]), 3),
        "index_file_mb": round(file_mb, 1),
        "rss_mb": round(rss_mb, 1) if rss_mb is not None else None,
        "raw_vectors_mb": round(raw_mb, 1),
        "memory_ratio": round(rss_mb / raw_mb, 3) if rss_mb is not None else None,
        **quality,
        "data": (
            f"{len(centres)} identities x {TEMPLATES_PER_IDENTITY[0]}-{TEMPLATES_PER_IDENTITY[1]} templates; "
            f"centre variance spectrum i^-{SPECTRUM_EXPONENT}, noise {NOISE}; queries "
            f"{MATED_SHARE:.0%} mated, {STRANGER_SHARE:.0%} strangers, "
            f"{1 - MATED_SHARE - STRANGER_SHARE:.0%} uniform random"
        ),
    }
    if sweep:
        result["sweep"] = sweep
    return result
