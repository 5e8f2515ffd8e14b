#!/usr/bin/env bash
# `npm run demo`: installs nats-server when it is missing (saying so), builds if needed, runs `orgwatch demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-tools.sh nats-server
# Build when dist/ is missing or older than a source file (`npm ci` builds it through `prepare`).
if [ ! -f dist/cli.js ] || [ -n "$(find src -newer dist/cli.js -name '*.ts' -print -quit)" ]; then
  npm run build >&2
fi
exec node dist/cli.js demo "$@"
