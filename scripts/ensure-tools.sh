#!/usr/bin/env bash
# Installs, with Debian's apt-get, the packages whose programs orgwatch's demo and tests run as real
# parts, when a program is missing; says so first. Usage: scripts/ensure-tools.sh PACKAGE...
# Known packages: nats-server, prometheus (prometheus, promtool), prometheus-alertmanager
# (prometheus-alertmanager or alertmanager, amtool), docker-compose, chromium (the console's browser
# tests and screenshots; CHROMIUM_BIN names another).
set -euo pipefail

has() { command -v "$1" >/dev/null 2>&1; }

installed() {
  case "$1" in
    # Debian puts nats-server in /usr/sbin, which is not on every user's PATH.
    nats-server) [ -n "${NATS_SERVER_BIN:-}" ] || has nats-server || [ -x /usr/sbin/nats-server ] ;;
    prometheus) has prometheus && has promtool ;;
    prometheus-alertmanager) { has prometheus-alertmanager || has alertmanager; } && has amtool ;;
    docker-compose) has docker-compose ;;
    chromium) [ -n "${CHROMIUM_BIN:-}" ] || has chromium ;;
    *)
      echo "ensure-tools: unknown package $1" >&2
      exit 2
      ;;
  esac
}

missing=()
for package in "$@"; do installed "$package" || missing+=("$package"); done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]} with apt-get (Debian packages; needed as real parts, not mocked)..." >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
