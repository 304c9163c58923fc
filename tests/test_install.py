"""The venv's OpenCV is the headless build (insightface's wheel would pull in the GUI one) and
insightface is the pinned 2.1, installed without its dependencies."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import cv2
import pytest


@pytest.mark.parametrize(
    "gui_build",
    ["opencv-python", "opencv-contrib-python"],
)
def test_no_gui_opencv_distribution(gui_build: str) -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution(gui_build)


def test_cv2_comes_from_opencv_python_headless() -> None:
    dist = metadata.distribution("opencv-python-headless")
    files = {str(f) for f in dist.files or ()}
    assert "cv2/__init__.py" in files
    assert Path(str(dist.locate_file("cv2/__init__.py"))).resolve() == Path(cv2.__file__).resolve()
    assert cv2.__version__.split(".")[:2] == dist.version.split(".")[:2]


def _build_section(name: str) -> list[str]:
    """The lines of one section of cv2.getBuildInformation(): its header and the indented lines
    under it, up to the next line with the header's indentation."""
    lines = cv2.getBuildInformation().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{name}:"):
            indent = len(line) - len(line.lstrip())
            section = [line]
            for following in lines[i + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                section.append(following)
            return section
    raise AssertionError(f"no {name!r} section in cv2.getBuildInformation()")


def test_cv2_has_no_gui_backend() -> None:
    # OpenCV 5 headless wheels print "GUI: NONE" with no backend lines under it; a GUI build
    # names its backend there (GTK+, QT, Win32 UI, Cocoa, FRAMEBUFFER, ...).
    section = _build_section("GUI")
    assert re.fullmatch(r"\s*GUI:\s+NONE", section[0]), section[0]
    backends = ("GTK", "QT", "Win32 UI", "Cocoa", "FRAMEBUFFER", "Wayland", "OpenGL support")
    for line in section[1:]:
        key = line.split(":")[0].strip()
        assert not key.startswith(backends), f"GUI backend in a headless build: {line.strip()}"


def test_highgui_windows_are_unavailable() -> None:
    with pytest.raises(cv2.error):
        cv2.namedWindow("face-watchlist-test")


def test_insightface_version() -> None:
    import insightface
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD
    from insightface.utils import face_align

    assert insightface.__version__ == "2.1"
    assert metadata.version("insightface") == "2.1"
    assert callable(face_align.norm_crop)
    assert SCRFD is not None
    assert ArcFaceONNX is not None


def test_insightface_requirements_met_without_the_gui_opencv() -> None:
    """insightface is installed with --no-deps because its wheel requires opencv-python; every
    other (non-extra) requirement it declares must still be installed."""
    requires = [r for r in metadata.requires("insightface") or [] if "extra ==" not in r]
    names = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires}
    assert "opencv-python" in names  # the reason for --no-deps
    missing = []
    for name in sorted(names - {"opencv-python"}):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    assert missing == []
