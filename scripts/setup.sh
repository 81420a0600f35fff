#!/usr/bin/env bash
# Install what Hermes needs (Debian packages), build it, and start the gateway on its embedded
# defaults: state in ~/.hermes (SQLite), the OpenAI-compatible API server on 127.0.0.1:8642.
#
#   scripts/setup.sh                 build and run `hermes gateway run` in the foreground
#   scripts/setup.sh --replace       the same, taking over from a gateway already running
#
# The API server is switched on here unless API_SERVER_ENABLED is set to something else; it
# refuses to listen beyond loopback without API_SERVER_KEY. Configure a model provider first
# (for example `build/hermes config set OPENROUTER_API_KEY sk-or-…`), and the platforms you
# want (docs/gateway.md, docs/matrix.md, docs/mattermost.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build -j "$(nproc)"

export API_SERVER_ENABLED="${API_SERVER_ENABLED:-true}"
echo "setup: starting the gateway (Ctrl+C stops it; logs below)"
exec build/hermes gateway run "$@"
