"""The search index over one model pack's templates: hnswlib, inner product, labels = template ids.

The store (SQLite) is the truth; the index is a cache of it, persisted beside the store as two
files: `<name>.hnsw` (hnswlib's own format) and the sidecar `<name>.hnsw.json`, which records the
format version, the hnswlib version, dim, counts, build parameters, the caller's fingerprint of
the store state it was built from, and the size and CRC-32 of the index file. The sidecar is
written last, so a crash between the two leaves a sidecar whose checksum does not match and the
next start rebuilds. The checksum matters beyond crashes: hnswlib trusts the neighbour ids it
reads, and a file with garbage in the middle (not merely truncated, which hnswlib notices) would
crash the process on the first search instead of raising.

Deletions are hnswlib tombstones (`mark_deleted`): still in the graph, never returned. Their
labels are kept in a set (also in the sidecar) because hnswlib cannot list them, and `len()` and
re-adding a deleted id need them. Tombstones are not reused for other ids (hnswlib's
`replace_deleted` loses track of labels when an id comes back), so the file grows with churn;
`open` rebuilds once more than a quarter of the entries are tombstones.

Parameters, measured with `face-watchlist bench scale` (face-like synthetic data, see
face_watchlist.bench.scale; 1M x 128, two cores, single-threaded search, top-10):

* M = 14. Memory decides it: per element hnswlib keeps 2*M 4-byte links on level 0 beside the
  float32 vector and its 8-byte label, plus ~100 bytes of bookkeeping (a mutex, the label hash
  map, level pointers). At 128 dims M=14 loads at 1.45x the raw vectors (740 MB for 512 MB);
  M=16 measured 1.52x, over the 1.5x budget. At equal search time a larger M bought no recall
  (at 100k: M=16/ef=384 and M=12/ef=512 both ~0.95 recall@10 in ~0.75 ms). At 512 dims the
  links are small beside the vector (~1.1x).
* ef_construction = 200: 400 made builds 1.6-1.8x slower for < 0.5 points of recall@10 at 100k. 200
  builds 1M x 128 in ~5 min on two cores; a build happens only when the file is missing or stale.
* ef_search = 384: search time grows about linearly with ef (1M x 128, p50/p99 in ms: ef 256
  0.72/0.85, 384 1.01/1.15, 512 1.35/1.59, 768 2.0/2.8). 384 keeps p99 near 1.2 ms, so a
  shared, noisy machine still has room under 2 ms.

Recall: at gallery sizes a school has it is fine: recall@10 0.994 at 20k templates, 0.97 at 50k. At a
million face-like templates it is not: recall@10 against exact search is 0.75 at ef=384 (0.79 at
512, 0.88 at 1024 = 2.6 ms), because the ten nearest templates of a face among a million are
mostly strangers at nearly equal similarity (~0.4), in a space of high intrinsic dimension where
a graph search cannot single out exactly those cheaply. SFace embeddings of LFW behave the same
(at 12k: 0.96 at ef=128, 0.993 at 256, slightly below the synthetic data). What a decision
needs, the person's own templates at ~0.7, is found more often: 98.3% of enrolled people at
ef=384 (98.7% at 512, 99.6% at 1024). Larger galleries that must find everyone need a larger ef
and more time per search, or another index.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import hnswlib
import numpy as np

from face_watchlist.errors import FaceWatchlistError

LOG = logging.getLogger("face_watchlist.gallery.index")

FORMAT_VERSION = 1
NORM_TOLERANCE = 1e-3
DEFAULT_M = 14
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 384
# open() rebuilds when more than this share of the entries are tombstones (and there are a few)
COMPACT_SHARE = 0.25
COMPACT_MIN = 1024
_SEED = 100  # hnswlib's level generator: a fixed seed makes builds reproducible
_CHUNK = 8 << 20
# hnswlib's file header: offsetLevel0, max_elements, cur_element_count, size_data_per_element,
# label_offset, offsetData (size_t); maxlevel (int); enterpoint (uint32); maxM, maxM0, M (size_t);
# mult (double); ef_construction (size_t)
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")

try:
    HNSWLIB_VERSION = importlib.metadata.version("hnswlib")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - built from source, unregistered
    HNSWLIB_VERSION = "unknown"


class IndexCorruptError(FaceWatchlistError):
    """An index file cannot be used: unreadable, truncated, altered, or made for something else."""


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _file_crc(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file, read in chunks. zlib's CRC runs at a few GB/s: ~0.3 s for 1M x 128."""
    crc = 0
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as f:
        while count := f.readinto(buffer):
            crc = zlib.crc32(view[:count], crc)
            size += count
    return size, crc


def _check_header(path: Path, dim: int, m: int, elements: int) -> None:
    with path.open("rb") as f:
        raw = f.read(_HEADER.size)
    if len(raw) != _HEADER.size:
        raise IndexCorruptError(f"{path}: shorter than an hnswlib header")
    (
        offset0,
        _cap,
        count,
        per_element,
        label_offset,
        data_offset,
        _lvl,
        _ep,
        max_m,
        max_m0,
        m_,
        _mult,
        _efc,
    ) = _HEADER.unpack(raw)
    links = max_m0 * 4 + 4
    expected = {
        "offset_level0": (offset0, 0),
        "element count": (count, elements),
        "M": (m_, m),
        "max M": (max_m, m),
        "max M0": (max_m0, 2 * m),
        "data offset": (data_offset, links),
        "label offset": (label_offset, links + 4 * dim),
        "bytes per element": (per_element, links + 4 * dim + 8),
    }
    wrong = [f"{name} {got} (expected {want})" for name, (got, want) in expected.items() if got != want]
    if wrong:
        raise IndexCorruptError(f"{path}: header does not match: {', '.join(wrong)}")


class _Sidecar(NamedTuple):
    format: object
    hnswlib: object
    dim: object
    fingerprint: object
    live: int
    elements: int
    m: int
    ef_construction: int
    size: int
    crc32: int
    deleted: set[int]


def _read_sidecar(meta_path: Path) -> _Sidecar:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"no sidecar {meta_path.name}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise IndexCorruptError(f"unreadable sidecar {meta_path.name}: {e}") from None
    try:
        return _Sidecar(
            format=meta["format"],
            hnswlib=meta["hnswlib"],
            dim=meta["dim"],
            fingerprint=meta["fingerprint"],
            live=int(meta["count"]),
            elements=int(meta["elements"]),
            m=int(meta["params"]["m"]),
            ef_construction=int(meta["params"]["ef_construction"]),
            size=int(meta["size"]),
            crc32=int(meta["crc32"]),
            deleted={int(t) for t in meta["deleted"]},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise IndexCorruptError(f"unreadable sidecar {meta_path.name}: bad or missing {e}") from None


def _as_vectors(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    """float32, C-contiguous, (n, dim), finite, unit norm (within NORM_TOLERANCE) - or ValueError."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}); got {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{what} must be numbers; got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{what}: row {row} has a NaN or infinite value")
    norms = np.sqrt(np.einsum("ij,ij->i", array, array, dtype=np.float64))
    bad = np.abs(norms - 1.0) > NORM_TOLERANCE
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} must be L2-normalised (norm 1 +- {NORM_TOLERANCE}); row {row} has norm {norms[row]:.6g}"
        )
    return array


def _as_ids(ids: np.ndarray | Iterable[int]) -> np.ndarray:
    array = np.asarray(ids)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"template ids must be a 1-D integer array; got shape {array.shape}, dtype {array.dtype}"
        )
    array = array.astype(np.int64, copy=False)
    if (array < 0).any():
        raise ValueError(f"template ids must not be negative; got {int(array.min())}")
    return array


class TemplateIndex:
    """hnswlib inner-product index over L2-normalised embeddings; labels are template ids.

    Similarities are cosines (1 - hnswlib's inner-product distance). Every method takes one lock:
    hnswlib allows a search during an add but not during a resize, and searches here are short.
    """

    def __init__(
        self,
        dim: int,
        capacity: int = 1024,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        threads: int = 2,
    ) -> None:
        self._configure(dim, m=m, ef_construction=ef_construction, ef_search=ef_search, threads=threads)
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1; got {capacity}")
        raw = hnswlib.Index(space="ip", dim=dim)
        raw.init_index(max_elements=capacity, M=m, ef_construction=ef_construction, random_seed=_SEED)
        self._attach(raw, set())

    def _configure(
        self,
        dim: int,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        threads: int = 2,
    ) -> None:
        for name, value in (
            ("dim", dim),
            ("m", m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if m < 2:
            raise ValueError(f"m must be at least 2; got {m}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer; got {threads!r}")
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.threads = threads
        self._lock = threading.RLock()

    def _attach(self, raw: Any, tombstones: set[int]) -> None:
        raw.set_ef(self.ef_search)
        raw.set_num_threads(self.threads)
        self._index = raw
        self._tombstones = tombstones

    # -- persistence -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        dim: int,
        fingerprint: str,
        rows: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
        **params: Any,
    ) -> tuple[TemplateIndex, bool]:
        """Load `path` if it matches `dim`, `fingerprint` and the parameters; else rebuild from `rows()`.

        `rows()` yields (ids, vectors) batches. Returns (index, rebuilt). A rebuilt index is saved;
        if that fails (read-only or full disk) the error is logged and the index is still returned.
        """
        path = Path(path)
        index = cls.__new__(cls)
        index._configure(dim, **{name: value for name, value in params.items() if name != "capacity"})
        start = time.perf_counter()
        try:
            index._load(path, fingerprint)
        except IndexCorruptError as e:
            reason = str(e)
        else:
            LOG.debug("loaded %s (%d templates) in %.2f s", path, len(index), time.perf_counter() - start)
            return index, False
        LOG.info("rebuilding search index %s: %s", path, reason)
        index = cls(dim, **params)
        for ids, vectors in rows():
            index.add(ids, vectors)
        LOG.info("rebuilt %s: %d templates in %.1f s", path, len(index), time.perf_counter() - start)
        try:
            index.save(path, fingerprint)
        except OSError as e:
            LOG.warning(
                "could not save the rebuilt search index %s (%s); it will be rebuilt next time", path, e
            )
        return index, True

    def _load(self, path: Path, fingerprint: str) -> None:
        """Load into self, or raise IndexCorruptError saying why the file cannot be used."""
        if not path.exists():
            raise IndexCorruptError("no index file")
        meta = _read_sidecar(sidecar_path(path))
        self._check_sidecar(meta, fingerprint)
        try:
            actual_size, actual_crc = _file_crc(path)
        except OSError as e:
            raise IndexCorruptError(f"unreadable index file: {e}") from None
        if (actual_size, actual_crc) != (meta.size, meta.crc32):
            raise IndexCorruptError(
                f"index file does not match its sidecar (size {actual_size}, expected {meta.size}; "
                f"crc32 {actual_crc:08x}, expected {meta.crc32:08x}): truncated, altered or half-written"
            )
        try:
            _check_header(path, self.dim, self.m, meta.elements)
        except OSError as e:
            raise IndexCorruptError(f"unreadable index file: {e}") from None
        # A fresh, uninitialised Index: if hnswlib's load throws half-way, there is nothing for it
        # to free twice. max_elements = the entry count, so no spare capacity is allocated.
        raw = hnswlib.Index(space="ip", dim=self.dim)
        try:
            raw.load_index(str(path), max_elements=max(meta.elements, 16))
        except (RuntimeError, MemoryError, ValueError) as e:
            raise IndexCorruptError(f"hnswlib cannot load it: {e}") from None
        if raw.element_count != meta.elements:
            raise IndexCorruptError(f"holds {raw.element_count} entries, its sidecar says {meta.elements}")
        self._attach(raw, meta.deleted)

    def _check_sidecar(self, meta: _Sidecar, fingerprint: str) -> None:
        if meta.format != FORMAT_VERSION:
            raise IndexCorruptError(f"format version {meta.format!r}, this version reads {FORMAT_VERSION}")
        if meta.hnswlib != HNSWLIB_VERSION:
            raise IndexCorruptError(f"written by hnswlib {meta.hnswlib!r}, this is {HNSWLIB_VERSION}")
        if meta.dim != self.dim:
            raise IndexCorruptError(f"built for dimension {meta.dim!r}, need {self.dim}")
        if meta.fingerprint != fingerprint:
            raise IndexCorruptError(
                f"stale: built from {meta.fingerprint!r}, the store is at {fingerprint!r}"
            )
        if (meta.m, meta.ef_construction) != (self.m, self.ef_construction):
            raise IndexCorruptError(
                f"built with M={meta.m}, ef_construction={meta.ef_construction}; "
                f"now M={self.m}, ef_construction={self.ef_construction}"
            )
        deleted = len(meta.deleted)
        if deleted != meta.elements - meta.live or meta.live < 0:
            raise IndexCorruptError(
                f"sidecar counts disagree: {meta.elements} entries, {meta.live} live, {deleted} deleted"
            )
        if deleted > max(COMPACT_MIN, COMPACT_SHARE * meta.elements):
            raise IndexCorruptError(f"{deleted} of {meta.elements} entries are deleted; compacting")

    def save(self, path: Path, fingerprint: str) -> None:
        """Write the index to `path` and its sidecar, each atomically (temp file + rename, sidecar last)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        meta_path = sidecar_path(path)
        meta_tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        with self._lock:
            try:
                self._index.save_index(str(tmp))
                expected = self._index.index_file_size()
                size, crc = _file_crc(tmp)  # the file is in the page cache: cheap
                if size != expected:  # hnswlib does not check its writes
                    raise OSError(f"could not write {tmp}: {size} of {expected} bytes written")
                meta = {
                    "format": FORMAT_VERSION,
                    "hnswlib": HNSWLIB_VERSION,
                    "dim": self.dim,
                    "count": len(self),
                    "elements": int(self._index.element_count),
                    "params": {
                        "m": self.m,
                        "ef_construction": self.ef_construction,
                        "ef_search": self.ef_search,
                    },
                    "fingerprint": fingerprint,
                    "size": size,
                    "crc32": crc,
                    "deleted": sorted(self._tombstones),
                }
                os.replace(tmp, path)
                meta_tmp.write_text(json.dumps(meta, separators=(",", ":")), encoding="utf-8")
                os.replace(meta_tmp, meta_path)
            finally:
                for leftover in (tmp, meta_tmp):
                    with contextlib.suppress(OSError):
                        leftover.unlink(missing_ok=True)

    # -- changes -----------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add templates; an id already present (or deleted) gets the new vector."""
        id_array = _as_ids(ids)
        array = np.asarray(vectors)
        if id_array.size == 0 and array.size == 0:
            return
        array = _as_vectors(array, self.dim, "vectors")
        if len(array) != len(id_array):
            raise ValueError(f"{len(id_array)} ids for {len(array)} vectors")
        if len(np.unique(id_array)) != len(id_array):
            # the last vector for an id wins, as if added one after the other
            _, last = np.unique(id_array[::-1], return_index=True)
            keep = np.sort(len(id_array) - 1 - last)
            id_array, array = id_array[keep], array[keep]
        with self._lock:
            needed = self._index.element_count + len(id_array)  # at most: some may be replacements
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, 2 * capacity))
            self._index.add_items(array, id_array, num_threads=self.threads)
            if self._tombstones:
                # hnswlib un-deletes a label that is added again
                self._tombstones.difference_update(id_array.tolist())

    def remove(self, ids: Iterable[int]) -> None:
        """Delete templates (tombstones: never returned again). Ids not present are ignored."""
        with self._lock:
            for value in ids:
                template_id = int(value)
                if not 0 <= template_id < 1 << 63 or template_id in self._tombstones:
                    continue
                try:
                    self._index.mark_deleted(template_id)
                except RuntimeError:  # "Label not found"
                    continue
                self._tombstones.add(template_id)

    # -- queries -----------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest templates, best first: (template id, cosine similarity). Single-threaded."""
        array = np.asarray(vector)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.shape[0] != 1:
            raise ValueError(f"search takes one vector; got shape {np.shape(vector)} (use search_many)")
        return self._search(_as_vectors(array, self.dim, "query"), k, 1)[0]

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """search() for each row of `vectors`, using the index's threads."""
        return self._search(_as_vectors(vectors, self.dim, "queries"), k, self.threads)

    def _search(self, queries: np.ndarray, k: int, threads: int) -> list[list[tuple[int, float]]]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative integer; got {k!r}")
        with self._lock:
            k = min(int(k), len(self))
            if k == 0 or len(queries) == 0:
                return [[] for _ in range(len(queries))]
            try:
                labels, distances = self._index.knn_query(queries, k=k, num_threads=threads)
            except RuntimeError:
                # fewer than k live entries reachable (the graph can split around tombstones)
                return [self._search_one_hard(q, k) for q in queries]
        return [
            _results(row_labels, row_distances)
            for row_labels, row_distances in zip(labels, distances, strict=True)
        ]

    def _search_one_hard(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """A query hnswlib could not answer in full: a wider search, then fewer results."""
        ef = max(self.ef_search, k)
        try:
            self._index.set_ef(min(4 * ef, max(len(self), ef)))
            while k > 0:
                try:
                    labels, distances = self._index.knn_query(query.reshape(1, -1), k=k, num_threads=1)
                except RuntimeError:
                    k //= 2
                    continue
                return _results(labels[0], distances[0])
            return []
        finally:
            self._index.set_ef(self.ef_search)

    # -- state -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._index.element_count) - len(self._tombstones)

    def __contains__(self, template_id: object) -> bool:
        if not isinstance(template_id, int | np.integer) or isinstance(template_id, bool):
            return False
        value = int(template_id)
        with self._lock:
            if not 0 <= value < 1 << 63 or value in self._tombstones:
                return False
            try:
                self._index.get_items([value])
            except RuntimeError:
                return False
        return True

    @property
    def params(self) -> dict[str, int]:
        return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    def __repr__(self) -> str:
        deleted = len(self._tombstones)
        return f"TemplateIndex(dim={self.dim}, templates={len(self)}, deleted={deleted}, {self.params})"


def _results(labels: np.ndarray, distances: np.ndarray) -> list[tuple[int, float]]:
    # 1 - distance can leave [-1, 1] by a rounding error; a cosine cannot
    return [
        (int(label), min(1.0, max(-1.0, 1.0 - float(distance))))
        for label, distance in zip(labels, distances, strict=True)
    ]
