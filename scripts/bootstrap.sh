#!/usr/bin/env bash
# Install what `make run` and `make test` need on a fresh Debian 12 / Ubuntu machine:
# system packages for building libvirt-python (via apt-get, as root or with sudo), then a
# virtualenv with the whole repo installed. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists libvirt 2>/dev/null || need_apt+=(libvirt-dev)
command -v gcc >/dev/null || need_apt+=(gcc)
"$PYTHON" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need_apt+=(python3-dev)
"$PYTHON" -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)

if ((${#need_apt[@]})); then
    echo "bootstrap: installing system packages: ${need_apt[*]}"
    . scripts/root.sh
    as_root bootstrap "apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "bootstrap: Python 3.11 or newer is needed; $PYTHON is $("$PYTHON" --version)" >&2
    exit 1
}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[dev]'
echo "bootstrap: ready ($VENV)"
