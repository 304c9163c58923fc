"""Safe image loading: every bad file becomes an ImageError, and pixel bombs are refused
from the header, before anything is decoded."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from face_watchlist.errors import ImageError

# 40 MP: a 8K camera frame fits, a 20000x20000 "decompression bomb" does not.
DEFAULT_MAX_PIXELS = 40_000_000

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def sniff_size(data: bytes) -> tuple[str, int, int]:
    """Return (format, width, height) read from the file header alone."""
    if data.startswith(b"\xff\xd8"):
        return ("jpeg", *_jpeg_size(data))
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ("webp", *_webp_size(data))
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return "bmp", abs(width), abs(height)
    raise ImageError("not a supported image (JPEG, PNG, WebP or BMP expected)")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG header")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise ImageError("truncated or corrupt JPEG: no frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise ImageError("corrupt WebP header")


def _check_complete(kind: str, data: bytes) -> None:
    # OpenCV decodes a truncated JPEG into a grey-padded picture without failing: refuse it here.
    if kind == "jpeg" and b"\xff\xd9" not in data[-1024:]:
        raise ImageError("truncated JPEG (no end-of-image marker)")
    if kind == "png" and b"IEND" not in data[-64:]:
        raise ImageError("truncated PNG (no IEND chunk)")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into a BGR uint8 array, refusing anything unsafe or broken."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    kind, width, height = sniff_size(data)
    if width <= 0 or height <= 0:
        raise ImageError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    _check_complete(kind, data)
    if kind == "jpeg":
        return _decode_jpeg(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"corrupt {kind.upper()} data: it could not be decoded")
    return image


def _decode_jpeg(data: bytes) -> np.ndarray:
    # libjpeg-turbo in strict mode: OpenCV turns corrupt entropy data into a grey picture with
    # only a warning on stderr; simplejpeg raises instead (and decodes about twice as fast).
    try:
        image = simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)
    except ValueError as err:
        raise ImageError(f"corrupt JPEG data ({err})") from None
    return _orient(np.asarray(image), exif_orientation(data))


_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda im: cv2.flip(im, 1),
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),
    5: cv2.transpose,
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a phone photo upright as its EXIF orientation tag says."""
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(image)) if turn else image


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG, 1 when absent or unreadable."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker == 0xDA:  # start of scan: no more metadata
            break
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\0\0":
            return _tiff_orientation(data[pos + 10 : pos + 2 + length])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for n in range(count):
        entry = ifd + 2 + 12 * n
        if entry + 12 > len(tiff):
            break
        tag, _type, _count = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if tag == 0x0112:
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
            return value if 1 <= value <= 8 else 1
    return 1


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; the error names the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return decode_image(data, max_pixels)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from None


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("could not encode the image as JPEG")
    return bytes(encoded.tobytes())
