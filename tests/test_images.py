"""Image loading: every bad file is an ImageError (one line from the CLI), pixel bombs are refused
from the header before anything is decoded, and the supported formats decode from real photos."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from face_watchlist.cli import main
from face_watchlist.errors import ImageError
from face_watchlist.faces.images import DEFAULT_MAX_PIXELS, decode_image, load_image, sniff_size
from fuzzing import examples

DATA = Path(__file__).resolve().parent / "data"
FACE_JPEG = DATA / "faces/dlib_johns/images/John_Salley/001.jpg"  # 150x150
SCENE_JPEG = DATA / "scenes/dlib_voc/2008_001009.jpg"  # 360 wide, 480 high: catches swapped sides
BIG_JPEG = DATA / "faces/face_recognition_knn/enroll/obama/obama.jpg"  # 910x1137, 32 KB of EXIF first

# ---------------------------------------------------------------------------------------------------------
# crafted files


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A complete, tiny PNG whose IHDR claims width x height (the pixel data is not there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, a baseline SOF0 frame header claiming width x height, EOI."""
    components = b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8 + len(components), 8, height, width, 3) + components
    return b"\xff\xd8" + sof + b"\xff\xd9"


def webp_header(width: int, height: int) -> bytes:
    """RIFF/WEBP with an extended (VP8X) header whose canvas is width x height."""
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def bmp_header(width: int, height: int) -> bytes:
    """BITMAPFILEHEADER + BITMAPINFOHEADER (24 bpp) claiming width x height, no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


BOMBS: dict[str, Callable[[int, int], bytes]] = {
    "png": png_header,
    "jpeg": jpeg_header,
    "webp": webp_header,
    "bmp": bmp_header,
}


def corrupt_jpeg_body(data: bytes, garbage: bytes) -> bytes:
    """Keep a real JPEG's headers up to and including the start-of-scan segment, replace the
    entropy-coded data with `garbage` and close with a proper end-of-image marker."""
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    return data[: sos + 2 + length] + garbage + b"\xff\xd9"


def imread(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def encode(image: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok
    return buf.tobytes()


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any call to cv2.imdecode fail the test: size limits must act on the header alone."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("cv2.imdecode was called: the pixel limit must be checked before decoding")

    monkeypatch.setattr(cv2, "imdecode", refuse)


# ---------------------------------------------------------------------------------------------------------
# the bad inputs, each as a file in tmp_path and the words its error must contain


@dataclass(frozen=True)
class BadCase:
    make: Callable[[Path], Path]  # writes the file under a directory, returns its path
    problem: str  # what the error message must say (besides naming the file)


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(data)
        return path

    return make


def _missing(tmp: Path) -> Path:
    return tmp / "absent.jpg"


def _directory(tmp: Path) -> Path:
    path = tmp / "folder.jpg"
    path.mkdir()
    return path


def _text(tmp: Path) -> Path:
    path = tmp / "notes.jpg"
    path.write_text("this is a text file with a .jpg name\n" * 20)
    return path


def _truncated_png(tmp: Path) -> Path:
    data = encode(imread(FACE_JPEG), ".png")
    return _write("truncated.png", data[: len(data) // 2])(tmp)


REAL = FACE_JPEG.read_bytes()

BAD_CASES: dict[str, BadCase] = {
    "missing": BadCase(_missing, "no such file"),
    "directory": BadCase(_directory, "is a directory"),
    "zero-byte": BadCase(_write("empty.jpg", b""), "empty file"),
    "text": BadCase(_text, "not a supported image"),
    "truncated-jpeg": BadCase(_write("truncated.jpg", REAL[:3000]), "truncated JPEG"),
    "truncated-big-jpeg": BadCase(_write("truncated-big.jpg", BIG_JPEG.read_bytes()[:3000]), "truncated"),
    "truncated-png": BadCase(_truncated_png, "truncated PNG"),
    "jpeg-header-only": BadCase(_write("headers-only.jpg", REAL[:200]), "truncated"),
    "corrupt-jpeg-body": BadCase(
        _write("garbage.jpg", corrupt_jpeg_body(REAL, b"garbage " * 1000)), "corrupt"
    ),
    "corrupt-jpeg-empty-scan": BadCase(_write("empty-scan.jpg", corrupt_jpeg_body(REAL, b"")), "corrupt"),
    "bomb-png": BadCase(_write("bomb.png", png_header(30000, 30000)), "over the limit"),
    "bomb-jpeg": BadCase(_write("bomb.jpg", jpeg_header(30000, 30000)), "over the limit"),
    "bomb-webp": BadCase(_write("bomb.webp", webp_header(30000, 30000)), "over the limit"),
    "bomb-bmp": BadCase(_write("bomb.bmp", bmp_header(30000, -30000)), "over the limit"),
}

BAD_PARAMS = [pytest.param(name, id=name) for name in BAD_CASES]


def _check_pixel_guard(name: str, request: pytest.FixtureRequest) -> None:
    if name.startswith("bomb-"):
        request.getfixturevalue("no_decoding")


@pytest.mark.parametrize("name", BAD_PARAMS)
def test_load_image_refuses(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    case = BAD_CASES[name]
    path = case.make(tmp_path)
    _check_pixel_guard(name, request)
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert case.problem in message
    assert "\n" not in message


@pytest.mark.parametrize("name", [n for n in BAD_PARAMS if n.values[0] not in ("missing", "directory")])
def test_decode_image_refuses(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    data = BAD_CASES[name].make(tmp_path).read_bytes()
    _check_pixel_guard(name, request)
    with pytest.raises(ImageError, match=BAD_CASES[name].problem):
        decode_image(data)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("face-watchlist: error: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("name", BAD_PARAMS)
def test_cli_detect_bad_file(
    name: str,
    tmp_path: Path,
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    case = BAD_CASES[name]
    path = case.make(tmp_path)
    _check_pixel_guard(name, request)
    code, out, err = run_cli(capsys, "--model-dir", str(model_dir), "detect", str(path))
    assert code == 1
    assert out == ""
    assert_one_line_error(err, str(path), case.problem)


@pytest.mark.parametrize("command", ["embed", "compare"])
def test_cli_other_commands_name_the_bad_file(
    command: str, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write("cut.jpg", REAL[:3000])(tmp_path)
    images = [str(path)] if command == "embed" else [str(FACE_JPEG), str(path)]
    code, out, err = run_cli(capsys, "--model-dir", str(model_dir), command, *images)
    assert code == 1
    assert out == ""
    assert_one_line_error(err, str(path), "truncated JPEG")


# ---------------------------------------------------------------------------------------------------------
# pixel limits


@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_header_is_sniffed(kind: str) -> None:
    assert sniff_size(BOMBS[kind](30000, 30000)) == (kind, 30000, 30000)


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize("kind", BOMBS)
def test_bomb_refused_before_decoding(kind: str) -> None:
    with pytest.raises(ImageError, match=r"30000x30000 = 900000000 pixels, over the limit of 40000000"):
        decode_image(BOMBS[kind](30000, 30000))


@pytest.mark.usefixtures("no_decoding")
def test_limit_applies_to_a_real_photo() -> None:
    with pytest.raises(ImageError, match="over the limit of 10000"):
        load_image(FACE_JPEG, max_pixels=10_000)  # 150 x 150 = 22,500 pixels


def test_limit_is_inclusive() -> None:
    assert decode_image(REAL, max_pixels=150 * 150).shape == (150, 150, 3)


@pytest.mark.usefixtures("no_decoding")
def test_cli_max_pixels(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "--model-dir", str(model_dir), "--max-pixels", "10000", "detect", str(FACE_JPEG)
    )
    assert code == 1
    assert out == ""
    assert_one_line_error(err, str(FACE_JPEG), "150x150", "over the limit of 10000")


def test_default_limit_admits_an_8k_frame() -> None:
    assert 7680 * 4320 <= DEFAULT_MAX_PIXELS < 30000 * 30000


@pytest.mark.parametrize("header", [png_header(0, 10), bmp_header(10, 0)], ids=["png-0-wide", "bmp-0-high"])
def test_zero_size_header(header: bytes) -> None:
    with pytest.raises(ImageError, match="invalid image size"):
        decode_image(header)


# ---------------------------------------------------------------------------------------------------------
# the supported formats, from a real photo


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    image = imread(SCENE_JPEG)
    assert image.shape == (480, 360, 3)
    return image


def _with_transparency(image: np.ndarray) -> np.ndarray:
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    bgra[:10, :10, 3] = 0  # some real transparency, or libwebp drops the alpha channel
    return bgra


# name -> (encoder input transform, extension, params, header kind, pixel-exact?)
FORMATS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str, list[int], str, bool]] = {
    "jpeg": (lambda im: im, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90], "jpeg", False),
    "progressive-jpeg": (lambda im: im, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], "jpeg", False),
    "png": (lambda im: im, ".png", [], "png", True),
    "png-grey": (lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), ".png", [], "png", False),
    "png-16bit": (lambda im: im.astype(np.uint16) * 257, ".png", [], "png", True),
    "webp-lossy": (lambda im: im, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 90], "webp", False),
    "webp-lossless": (lambda im: im, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], "webp", True),
    "webp-alpha": (_with_transparency, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 90], "webp", False),
    "bmp": (lambda im: im, ".bmp", [], "bmp", True),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_decode(fmt: str, scene: np.ndarray, tmp_path: Path) -> None:
    transform, ext, params, kind, exact = FORMATS[fmt]
    data = encode(transform(scene), ext, params)
    assert sniff_size(data) == (kind, 360, 480)
    path = tmp_path / f"scene{ext}"
    path.write_bytes(data)
    image = load_image(path)
    assert image.shape == (480, 360, 3)
    assert image.dtype == np.uint8
    if exact:
        assert np.array_equal(image, scene)
    else:  # same picture, up to compression and grey conversion
        grey = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY).astype(np.float32)
        decoded = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        assert float(np.abs(grey - decoded).mean()) < 4.0


def test_webp_container_variants(scene: np.ndarray) -> None:
    """The three WebP headers sniff_size reads: VP8 (lossy), VP8L (lossless), VP8X (extended)."""
    chunks = {
        fmt: encode(FORMATS[fmt][0](scene), ".webp", FORMATS[fmt][2])[12:16]
        for fmt in ("webp-lossy", "webp-lossless", "webp-alpha")
    }
    assert chunks == {"webp-lossy": b"VP8 ", "webp-lossless": b"VP8L", "webp-alpha": b"VP8X"}


def jpeg_frame_offset(data: bytes) -> int:
    """Offset of the top-level SOF marker, walking the segments (not searching the bytes: an EXIF
    thumbnail is a whole JPEG inside APP1, with its own SOF and EOI)."""
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC2):
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return pos


def test_jpeg_with_exif_before_the_frame() -> None:
    data = BIG_JPEG.read_bytes()
    assert data[2:4] == b"\xff\xe1"  # APP1 (EXIF, with a thumbnail) comes first
    assert jpeg_frame_offset(data) > 30_000  # the frame header only after 32 KB of metadata
    assert sniff_size(data) == ("jpeg", 910, 1137)
    assert decode_image(data).shape == (1137, 910, 3)


def test_thumbnail_end_marker_does_not_pass_for_a_complete_file() -> None:
    """Cut just after the EXIF thumbnail's own end-of-image marker: still refused."""
    data = BIG_JPEG.read_bytes()
    cut = data.index(b"\xff\xd9") + 2
    assert cut < jpeg_frame_offset(data)
    with pytest.raises(ImageError, match="truncated or corrupt JPEG: no frame header"):
        decode_image(data[:cut])


# ---------------------------------------------------------------------------------------------------------
# fuzzing: an HxWx3 uint8 array or an ImageError, nothing else

FUZZ = settings(max_examples=examples(200, 2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = {
    "jpeg": REAL,
    "png": encode(imread(FACE_JPEG), ".png"),
    "webp": encode(imread(FACE_JPEG), ".webp"),
    "bmp": encode(imread(FACE_JPEG), ".bmp"),
}
MAGIC = [b"", b"\xff\xd8", b"\xff\xd8\xff\xc0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM"]


def decodes_or_refuses(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    try:
        image = decode_image(data, max_pixels)
    except ImageError:
        return
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    assert image.shape[0] > 0
    assert image.shape[1] > 0
    assert image.shape[0] * image.shape[1] <= max_pixels


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_fuzz_bytes_after_a_magic_number(magic: bytes, rest: bytes) -> None:
    # a small limit keeps a random header from making OpenCV allocate a huge buffer
    decodes_or_refuses(magic + rest, max_pixels=1_000_000)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 12))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):  # splice some bytes in
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    if draw(st.booleans()):  # cut it short, or cut a hole out of it
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, len(data))) if draw(st.booleans()) else len(data)
        del data[start:end]
    return bytes(data)


@FUZZ
@given(mutated(SEEDS["jpeg"]))
def test_fuzz_mutated_real_jpeg(data: bytes) -> None:
    decodes_or_refuses(data)


@FUZZ
@given(st.sampled_from(["png", "webp", "bmp"]).flatmap(lambda kind: mutated(SEEDS[kind])))
def test_fuzz_mutated_other_formats(data: bytes) -> None:
    decodes_or_refuses(data)
