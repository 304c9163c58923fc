"""Phone photos carry their rotation in EXIF: enrolment photos must come out upright."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from face_watchlist.faces.images import decode_image, exif_orientation
from face_watchlist.faces.pipeline import FacePipeline


def _jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decoded_like_opencv_applies_orientation(orientation: int, data_dir: Path) -> None:
    photo = cv2.imread(str(data_dir / "scenes" / "dlib_voc" / "2008_002470.jpg"))
    data = _jpeg_with_orientation(photo, orientation)
    assert exif_orientation(data) == orientation
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # OpenCV honours EXIF
    decoded = decode_image(data)
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 2.0


def test_rotated_portrait_finds_its_face(pipeline: FacePipeline, data_dir: Path) -> None:
    photo = cv2.imread(str(data_dir / "scenes" / "dlib_voc" / "Tom_Cruise_avp_2014_4.jpg"))
    sideways = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)  # as the sensor stored it
    faces = pipeline.analyse(decode_image(_jpeg_with_orientation(sideways, 6)))
    assert faces
    assert faces[0].quality.frontalness > 0.5


def test_no_or_broken_exif_means_upright() -> None:
    assert exif_orientation(b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00\xff\xd9") == 1
    assert exif_orientation(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff") == 1
