#!/bin/sh
# The add-on image's install steps, called by the Dockerfile and rehearsed by the tests in a
# debootstrapped Debian trixie (tests/test_addon_image.py), so both run the same commands.
#
#   install.sh build SRC   build stage: compiler, venv in /opt/face-watchlist, the wheels (hnswlib has
#                          none: it is compiled here), the face_watchlist package from SRC
#   install.sh runtime     final stage: only the Python interpreter the venv runs on
set -eu

VENV=/opt/face-watchlist
export DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

apt_install() {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*
}

build() {
    src=$1
    apt_install ca-certificates python3 python3-venv python3-dev build-essential
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # pinned versions, every file's sha256 checked (requirements.lock, made by scripts/lock)
    "$VENV/bin/pip" install --quiet --require-hashes -r "$src/requirements.lock"
    # insightface's wheel requires the GUI opencv-python, which would take cv2 over from the
    # headless build: install it alone; requirements.txt has what its imports need
    "$VENV/bin/pip" install --quiet --no-deps -r "$src/requirements-nodeps.txt"
    if "$VENV/bin/pip" show --quiet opencv-python >/dev/null 2>&1; then
        echo "install.sh: opencv-python (GUI build) got installed" >&2
        exit 1
    fi
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf "$site/face_watchlist"
    cp -r "$src/face_watchlist" "$site/face_watchlist"
    find "$site/face_watchlist" -name __pycache__ -prune -exec rm -rf {} +
    cat > "$VENV/bin/face-watchlist" <<EOF
#!$VENV/bin/python
import sys
from face_watchlist.cli import main
sys.exit(main())
EOF
    chmod 755 "$VENV/bin/face-watchlist"
    # test suites shipped inside the wheels are dead weight in the image
    find "$site" -depth -type d -name tests -path '*/scipy/*' -exec rm -rf {} +
    find "$site" -depth -type d -name tests -path '*/skimage/*' -exec rm -rf {} +
    find "$site" -depth -type d -name tests -path '*/numpy/*' -exec rm -rf {} +
    rm -rf "$site/onnx/backend/test"
    # debug symbols: hnswlib is compiled here with them, several wheels ship them (about 40 MB)
    find "$site" -name '*.so*' -type f -exec strip --strip-unneeded {} +
    "$VENV/bin/python" -m compileall -q "$site/face_watchlist"
    # the image never installs anything at run time: no installer in it (14 MB, one tool less)
    "$VENV/bin/python" -m pip uninstall --quiet --yes pip
    "$VENV/bin/face-watchlist" --version
}

runtime() {
    # python3 matches the build stage's interpreter, which the copied venv links to
    apt_install ca-certificates python3
}

case "${1:-}" in
    build) build "${2:?usage: install.sh build SRC}" ;;
    runtime) runtime ;;
    *) echo "usage: install.sh build SRC | install.sh runtime" >&2; exit 2 ;;
esac
