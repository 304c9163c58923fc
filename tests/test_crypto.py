"""Encryption at rest on a gallery enrolled through the real pipeline: a copied data directory
without the key shows no face (no decodable photo, no raw template anywhere), the key reads it
back and matches, a wrong key or no key is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from face_watchlist.cli import main
from face_watchlist.config import load_settings
from face_watchlist.errors import FaceWatchlistError
from face_watchlist.faces.images import decode_image
from face_watchlist.faces.packs import PACKS
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.faces.quality import QualityGate
from face_watchlist.gallery import enroll
from face_watchlist.gallery.gallery import Gallery
from face_watchlist.gallery.store import Store
from face_watchlist.trust.crypto import Cipher, CryptoError, decrypt_bytes, encrypt_bytes, generate_key

JOHNS = Path(__file__).resolve().parent / "data/faces/dlib_johns/images"
SPEC = PACKS["opencv-zoo"]


def test_helpers_round_trip_and_refuse_a_wrong_key() -> None:
    key, other = generate_key(), generate_key()
    sealed = encrypt_bytes(b"face", Cipher(key), b"photo")
    assert sealed != b"face"
    assert b"face" not in sealed
    assert decrypt_bytes(sealed, Cipher(key), b"photo") == b"face"
    with pytest.raises(CryptoError, match="not the one"):
        decrypt_bytes(sealed, Cipher(other), b"photo")
    with pytest.raises(CryptoError, match="not the one"):  # sealed as a photo, opened as something else
        decrypt_bytes(sealed, Cipher(key), b"embedding")
    with pytest.raises(CryptoError, match=r"set security\.encryption_key"):
        decrypt_bytes(sealed, None)
    assert decrypt_bytes(b"plain", None) == b"plain"
    with pytest.raises(CryptoError, match="32 random bytes"):
        Cipher("too-short")


def test_the_key_option_is_validated() -> None:
    assert load_settings({"security": {"encryption_key": generate_key()}}).cipher() is not None
    assert load_settings({}).cipher() is None  # off by default
    with pytest.raises(FaceWatchlistError, match="encryption_key"):
        load_settings({"security": {"encryption_key": "abc"}})


def test_a_copied_data_dir_reveals_no_face(
    tmp_path: Path,
    pipeline: FacePipeline,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = generate_key()
    data = tmp_path / "data"
    store = Store(data, cipher=Cipher(key))
    try:
        gallery = Gallery(store, SPEC)
        jobs = [j for j in enroll.folder_jobs(JOHNS) if j.display_name in ("John_Simm", "John_Savage")]
        summary = enroll.Enroller(gallery, pipeline, QualityGate(), "import").run(
            jobs, store.ensure_list("w")
        )
        assert summary.counts()["enrolled"] == len(jobs)
        templates = store.templates(SPEC.name)
        probe = templates[0].embedding.copy()
        assert abs(float(np.linalg.norm(probe)) - 1.0) < 1e-4  # readable with the key
        assert gallery.match(probe).outcome == "match"
    finally:
        store.close()
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)

    # no index file (it would hold the raw vectors), no photo a decoder accepts
    assert not list(copy.rglob("*.hnsw"))
    photos = [p for p in (copy / "photos").rglob("*") if p.is_file()]
    assert len(photos) == len(jobs)
    for photo in photos:
        raw = photo.read_bytes()
        assert raw[:3] != b"\xff\xd8\xff"
        with pytest.raises(FaceWatchlistError):
            decode_image(raw)
    # no template's float32 bytes anywhere in the copied files (database, WAL, everything)
    blobs = b"".join(p.read_bytes() for p in copy.rglob("*") if p.is_file())
    for template in templates:
        assert template.embedding.astype(np.float32).tobytes()[:64] not in blobs

    thief = Store(copy)
    try:
        with pytest.raises(CryptoError, match="encrypted"):
            thief.templates(SPEC.name)
        with pytest.raises(CryptoError, match="encrypted"):
            thief.read_photo(thief.photos()[0]["path"])
    finally:
        thief.close()
    wrong = Store(copy, cipher=Cipher(generate_key()))
    try:
        with pytest.raises(CryptoError, match="not the one"):
            wrong.templates(SPEC.name)
    finally:
        wrong.close()
    owner = Store(copy, cipher=Cipher(key))
    try:
        assert decode_image(owner.read_photo(owner.photos()[0]["path"])).ndim == 3
        np.testing.assert_array_equal(owner.templates(SPEC.name)[0].embedding, probe)
    finally:
        owner.close()

    # the CLI: without the key a clear one-line error; with it, re-embedding reads the sealed photos
    args = ["--data", str(copy), "--model-dir", str(model_dir)]
    monkeypatch.delenv("FACE_WATCHLIST_ENCRYPTION_KEY", raising=False)
    assert main([*args, "people"]) == 1
    assert "this data is encrypted: set security.encryption_key" in capsys.readouterr().err
    monkeypatch.setenv("FACE_WATCHLIST_ENCRYPTION_KEY", key)
    assert main([*args, "reembed"]) == 0
    assert f"re-embedded {len(jobs)} photos" in capsys.readouterr().out
    assert main([*args, "calibrate"]) == 0
