#!/usr/bin/env bash
# A NATS client nobody here wrote, for the tracing test (tests/test_tracing.py): Node.js from
# Debian (if missing) and the official @nats-io/transport-node client from npm, installed once
# into .cache/nats-js-<version>. Installing Node needs root (or sudo). Safe to run again.
set -euo pipefail
# shellcheck source=scripts/root.sh
. "$(dirname "$0")/root.sh"
VERSION=3.4.0
DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/nats-js-$VERSION"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    as_root nats-js "sudo apt-get install nodejs npm"
    echo "nats-js: installing nodejs and npm"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        nodejs npm >/dev/null
fi
if [ -f "$DIR/node_modules/@nats-io/transport-node/package.json" ]; then
    exit 0
fi
echo "nats-js: installing @nats-io/transport-node@$VERSION into $DIR"
mkdir -p "$DIR"
echo '{"private": true, "type": "module"}' >"$DIR/package.json"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error \
    "@nats-io/transport-node@$VERSION" >/dev/null
