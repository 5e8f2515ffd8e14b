#!/usr/bin/env bash
# `npm run demo`: installs nats-server when it is missing (saying so), builds if needed, runs `orgwatch demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NATS_SERVER_BIN:-}" ] && ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "orgwatch demo needs nats-server; installing it with apt-get (Debian's nats-server package)..." >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends nats-server
  else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends nats-server; fi
fi
# Build when dist/ is missing or older than a source file (`npm ci` builds it through `prepare`).
if [ ! -f dist/cli.js ] || [ -n "$(find src -newer dist/cli.js -name '*.ts' -print -quit)" ]; then
  npm run build >&2
fi
exec node dist/cli.js demo "$@"
