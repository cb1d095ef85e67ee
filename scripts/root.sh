# shellcheck shell=bash disable=SC2034  # SUDO is read by the scripts that source this
# Sourced by the set-up scripts: `as_root WHO HINT` sets SUDO to "" when running as root and to
# "sudo" when sudo exists; otherwise it prints "WHO: not root and no sudo; run: HINT" and exits.
as_root() {
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "$1: not root and no sudo; run: $2" >&2
            exit 1
        }
        SUDO=sudo
    fi
}
