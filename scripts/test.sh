#!/usr/bin/env bash
# The full test suite: unit tests, both wallet sandboxes driven by the official SDKs, the store
# suite on SQLite AND PostgreSQL, and the browser tests in headless Chromium. On a fresh Debian
# machine it installs what it needs (PostgreSQL, Chromium) from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
	[ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL: a throwaway server for the store suite (scripts/testpg.sh installs it if missing).
eval "$(scripts/testpg.sh start)"
trap 'scripts/testpg.sh stop >/dev/null 2>&1 || true' EXIT

# Chromium for the browser tests.
if ! command -v chromium >/dev/null 2>&1; then
	echo "installing chromium (Debian package) for the browser tests" >&2
	apt_install chromium
fi
export HUTONG_CHROMIUM="${HUTONG_CHROMIUM:-$(command -v chromium)}"

go vet ./...
go test -race -count=1 -timeout 25m "$@" ./...
