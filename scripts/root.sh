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

# `install_missing WHO RECOMMENDS PKG...` (after as_root): apt-get installs those of PKG that
# dpkg does not have, saying so in one line as WHO; RECOMMENDS is "recommends" to take their
# recommended packages too, or "no-recommends".
install_missing() {
    local who=$1 recommends=$2 pkg
    local need=() flags=(-y -qq)
    shift 2
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || need+=("$pkg")
    done
    ((${#need[@]})) || return 0
    [ "$recommends" = recommends ] || flags+=(--no-install-recommends)
    echo "$who: installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install "${flags[@]}" "${need[@]}" >/dev/null
}
