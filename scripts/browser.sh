#!/usr/bin/env bash
# Install Debian's Chromium (the status page's browser test, tests/test_observability.py) and
# tmux (the tables read in a real terminal), if missing. Needs root (or sudo). Safe to run again.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v tmux >/dev/null || need+=(tmux)
if ((${#need[@]} == 0)); then
    exit 0
fi
as_root browser "sudo apt-get install ${need[*]}"
echo "browser: installing ${need[*]} (headless browser and terminal for the status tests)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
