#!/usr/bin/env bash
# Install Debian's Chromium for the status page's browser test (tests/test_observability.py),
# if it is missing. Needs root (or sudo). Safe to run again.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
if command -v chromium >/dev/null; then
    exit 0
fi
as_root browser "sudo apt-get install chromium"
echo "browser: installing chromium (headless browser for the status page test)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
