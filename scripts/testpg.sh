#!/usr/bin/env bash
# testpg.sh — a throwaway PostgreSQL for Hutong's tests.
#
#   eval "$(scripts/testpg.sh)"   start one (or reuse the running one); prints
#                                 export HUTONG_TEST_POSTGRES_URL=postgres://…
#   scripts/testpg.sh stop        stop it and delete its data
#   scripts/testpg.sh status      exit 0 when it runs
#
# It installs Debian's postgresql package when no server is found, runs the server as the
# `postgres` user when called as root (PostgreSQL refuses root), listens on a free loopback
# port and a unix socket in its own directory, and keeps its pid, data and log under
# $HUTONG_TESTPG_DIR (default /tmp/hutong-testpg). Durability settings are PostgreSQL's
# defaults, so benchmarks against it mean something. Progress goes to stderr; only the
# export line goes to stdout.
set -euo pipefail

DIR=${HUTONG_TESTPG_DIR:-/tmp/hutong-testpg}
DATA=$DIR/data
SOCK=$DIR/sock
LOG=$DIR/postgres.log
URLFILE=$DIR/url
DBNAME=hutong_test

say() { echo "testpg: $*" >&2; }
die() { say "$*"; exit 1; }

find_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -n "$d" ] && [ -x "$d/postgres" ]; then
		echo "$d"
		return
	fi
	if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v pg_ctl)")"
	fi
}

install_server() {
	[ "$(id -u)" = 0 ] || die "no PostgreSQL server found; install it as root: apt-get update && apt-get install -y postgresql"
	command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server found and no apt-get to install one"
	say "installing PostgreSQL (apt-get install postgresql)…"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
}

# as_pg runs a command as the server's owner: postgres when we are root, ourselves otherwise.
# The lock's descriptor stays behind: a server that inherited it would hold the lock forever.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@" 9>&-
	else
		"$@" 9>&-
	fi
}

running() {
	[ -n "${BIN:-}" ] && [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
	BIN=$(find_bin)
	if [ -z "$BIN" ]; then
		install_server
		BIN=$(find_bin)
		[ -n "$BIN" ] || die "PostgreSQL installed but no server binaries found under /usr/lib/postgresql/*/bin"
	fi
	if running && [ -s "$URLFILE" ]; then
		say "reusing the server running in $DIR"
		echo "export HUTONG_TEST_POSTGRES_URL=$(cat "$URLFILE")"
		return
	fi
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postgres
	fi

	# A stale directory (server died, machine rebooted) is thrown away: the data is for tests.
	rm -rf "$DATA" "$SOCK" "$URLFILE"
	mkdir -p "$DIR" "$SOCK"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$DIR" "$SOCK"
	fi
	chmod 700 "$DIR"
	say "initdb in $DATA ($("$BIN/postgres" --version))"
	as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; die "initdb failed"; }

	local port started=
	for port in $(seq 54329 54429); do
		port_free "$port" || continue
		if as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "-p $port -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=300" start >&2; then
			started=$port
			break
		fi
		say "port $port did not work, trying the next"
	done
	[ -n "$started" ] || { tail -n 20 "$LOG" >&2 || true; die "could not start PostgreSQL"; }
	for _ in $(seq 1 60); do
		as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$started" && break
		sleep 0.5
	done
	as_pg "$BIN/createdb" -h 127.0.0.1 -p "$started" -U postgres "$DBNAME"
	echo "postgres://postgres@127.0.0.1:$started/$DBNAME?sslmode=disable" >"$URLFILE"
	say "PostgreSQL listening on 127.0.0.1:$started (stop it with: $0 stop)"
	echo "export HUTONG_TEST_POSTGRES_URL=$(cat "$URLFILE")"
}

stop() {
	BIN=$(find_bin)
	if running; then
		as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
		say "stopped"
	else
		say "not running"
	fi
	rm -rf "$DIR"
}

status() {
	BIN=$(find_bin)
	if running && [ -s "$URLFILE" ]; then
		say "running: $(cat "$URLFILE")"
		return 0
	fi
	say "not running"
	return 1
}

# One invocation at a time: a second start waits for the first and then reuses its server.
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
