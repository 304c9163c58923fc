"""The gallery for one model pack: the store, the pack's search index kept in step with it, and
the decision for a probe embedding."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_watchlist.faces.packs import PackSpec
from face_watchlist.gallery.decide import Decision, PersonScore, decide, fuse, person_scores
from face_watchlist.gallery.index import TemplateIndex
from face_watchlist.gallery.store import Store

LOG = logging.getLogger(__name__)
NEIGHBOURS = 50  # nearest templates looked at per probe: enough to see a runner-up with many photos


@dataclass(frozen=True)
class Candidates:
    """What the index found for one probe, per person, best first."""

    ranked: list[PersonScore]
    probe: np.ndarray


class Gallery:
    def __init__(self, store: Store, spec: PackSpec, index_dir: Path | None = None) -> None:
        self.store = store
        self.spec = spec
        self.index_path = (index_dir or store.data_dir / "index") / f"{spec.name}.hnsw"
        if store.encrypted:
            # the index file holds the raw vectors: with encryption at rest it lives in memory only
            self.index_path.unlink(missing_ok=True)
            self.index = TemplateIndex(spec.embedding_size)
            for ids, vectors in store.template_batches(spec.name):
                self.index.add(ids, vectors)
            return
        self.index, rebuilt = TemplateIndex.open(
            self.index_path,
            spec.embedding_size,
            self._fingerprint(),
            lambda: store.template_batches(spec.name),
        )
        if rebuilt:
            LOG.info("search index for %s rebuilt from the store (%d templates)", spec.name, len(self.index))

    def _fingerprint(self) -> str:
        return f"generation={self.store.generation(self.spec.name)}"

    def save_index(self) -> None:
        """Persist the index; call after a batch of changes (a stale file is rebuilt at start)."""
        if self.store.encrypted:
            return
        self.index.save(self.index_path, self._fingerprint())

    def added(self, template_id: int, embedding: np.ndarray) -> None:
        self.index.add(np.array([template_id], dtype=np.int64), embedding.reshape(1, -1))

    def removed(self, template_ids: list[int]) -> None:
        if template_ids:
            self.index.remove(template_ids)

    def candidates(self, probe: np.ndarray) -> Candidates:
        neighbours = self.index.search(probe, NEIGHBOURS)
        owners = self.store.template_owners([t for t, _ in neighbours])
        return Candidates(person_scores(neighbours, owners), probe)

    def decide(self, found: list[Candidates]) -> Decision:
        """The decision for one tracked person from one or more probe faces (fused)."""
        ranked = fuse([c.ranked for c in found])
        people = [p.person_id for p in ranked]
        probe = found[0].probe if len(found) == 1 else _mean_probe([c.probe for c in found])
        return decide(
            ranked,
            self.store.memberships(people),
            self.spec.thresholds,
            self.spec.calibration,
            probe=probe,
            rejections=self.store.rejections(people, self.spec.name),
            attempts=len(found),
        )

    def match(self, probe: np.ndarray) -> Decision:
        return self.decide([self.candidates(probe)])


def _mean_probe(probes: list[np.ndarray]) -> np.ndarray:
    mean = np.asarray(np.mean(probes, axis=0), dtype=np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean
