#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# deps.sh [test|bench] - check for, and when run as root install, what
# evq's build and tests (test) or also its benchmarks (bench, the default)
# need, from Debian's packages (Debian 12 or later).
#
# Idempotent: it asks dpkg about each package and installs only the
# missing ones (one `apt-get update` first). Quiet (one line) when all is
# present. Needs nothing beyond a minimal Debian: bash, dpkg and apt-get;
# no sudo, python3 or lsb_release.
#
#   test    build-essential cmake pkg-config make liburing-dev groff-base
#           socat netcat-openbsd curl redis-tools: what `make test` and
#           `make install` need; fatal if missing.
#           liburing-dev is here, not with the benchmarks, because without
#           it evq builds without its io_uring backend (the default one),
#           and the suite's uring rows would only be skipped; groff-base
#           renders the man pages for the man_pages test; socat, nc,
#           curl and redis-cli/redis-benchmark are the clients that
#           examples/tests/ drive the servers with.
#   bench   the test set, plus the benchmark peers and tools (libev, libuv,
#           libevent, tevent, gnuplot, valgrind, strace, fio; nginx, wrk
#           and redis-server for bench/apps.sh): each one
#           missing only leaves out what needs it, so these never stop
#           anything; not root, deps.sh prints the command and goes on.
#
# Not root and a test package missing: prints the command to run and
# exits 1. EVQ_SKIP_DEPS=1 skips every check (exits 0 at once).

set -euo pipefail

mode=${1:-bench}
case $mode in
test | bench) ;;
*) printf 'usage: deps.sh [test|bench]\n' >&2; exit 2 ;;
esac

REQUIRED=(build-essential cmake pkg-config make liburing-dev groff-base
	  socat netcat-openbsd curl redis-tools)
OPTIONAL=()
if [ "$mode" = bench ]; then
	OPTIONAL=(libev-dev libuv1-dev libevent-dev libtevent-dev
		  libtalloc-dev gnuplot-nox valgrind strace fio
		  nginx-light wrk redis-server)
fi
CMAKE_MIN=3.25

say() { printf 'deps: %s\n' "$*"; }
warn() { printf 'deps: warning: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

if [ "${EVQ_SKIP_DEPS:-0}" = 1 ]; then
	say "skipped (EVQ_SKIP_DEPS=1)"
	exit 0
fi

command -v dpkg-query >/dev/null 2>&1 ||
	die "dpkg-query not found: this script needs Debian or a derivative"

installed() {
	local status
	status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
	[ "$status" = "install ok installed" ]
}

# Print the packages of the list named by $1 that are not installed.
missing_of() {
	local -n list=$1
	local p
	for p in "${list[@]}"; do
		installed "$p" || printf '%s\n' "$p"
	done
}

# cmake must be new enough, wherever it came from. "cmake version 3.25.1"
cmake_ok() {
	local v major minor want_major want_minor
	command -v cmake >/dev/null 2>&1 || return 1
	v=$(cmake --version 2>/dev/null | sed -n '1s/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')
	[ -n "$v" ] || return 1
	major=${v%%.*} minor=${v#*.}
	want_major=${CMAKE_MIN%%.*} want_minor=${CMAKE_MIN#*.}
	[ "$major" -gt "$want_major" ] ||
		{ [ "$major" -eq "$want_major" ] && [ "$minor" -ge "$want_minor" ]; }
}

cc_ok() {
	command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1
}

mapfile -t miss_req < <(missing_of REQUIRED)
mapfile -t miss_opt < <(missing_of OPTIONAL)

if [ ${#miss_req[@]} -eq 0 ] && [ ${#miss_opt[@]} -eq 0 ]; then
	cc_ok || die "no C compiler (cc) on PATH, though build-essential is installed"
	cmake_ok || die "cmake >= $CMAKE_MIN is needed; found: $(cmake --version 2>/dev/null | head -n 1)"
	say "all $(( ${#REQUIRED[@]} + ${#OPTIONAL[@]} )) packages for \`make $mode\` present"
	exit 0
fi

# The command that installs a list, for a user who is not root.
apt_command() {
	printf '  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends'
	printf ' %s' "$@"
	printf '\n'
}

if [ "$(id -u)" -ne 0 ]; then
	if [ ${#miss_req[@]} -gt 0 ]; then
		{
			printf 'deps: missing packages:'
			printf ' %s' "${miss_req[@]}" "${miss_opt[@]}"
			printf '\ndeps: run as root (or with sudo):\n'
			apt_command "${miss_req[@]}" "${miss_opt[@]}"
			printf 'deps: (or set EVQ_SKIP_DEPS=1 to build without the check)\n'
		} >&2
		exit 1
	fi
	# Only benchmark peers and tools are missing: what needs them is
	# left out (evq-bench lists it as missing), and the rest runs.
	{
		printf 'deps: not installed, left out of the benchmarks:'
		printf ' %s' "${miss_opt[@]}"
		printf '\ndeps: to have them, run as root (or with sudo):\n'
		apt_command "${miss_opt[@]}"
	} >&2
	cc_ok || die "no C compiler (cc) on PATH, though build-essential is installed"
	cmake_ok || die "cmake >= $CMAKE_MIN is needed; found: $(cmake --version 2>/dev/null | head -n 1)"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp "${TMPDIR:-/tmp}/evq-deps.XXXXXX")
trap 'rm -f "$log"' EXIT

# apt_install [--show-errors] PKG...: quiet; the output goes to $log.
apt_install() {
	local show=0
	if [ "$1" = --show-errors ]; then show=1; shift; fi
	if apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 \
		"$@" >"$log" 2>&1; then
		return 0
	fi
	[ $show = 0 ] || sed 's/^/deps:   /' "$log" >&2
	return 1
}

say "installing:" "${miss_req[@]}" "${miss_opt[@]}"
if ! apt-get update >"$log" 2>&1; then
	# Maybe only one source is broken; the install below says for sure.
	warn "apt-get update failed:"
	sed 's/^/deps:   /' "$log" >&2
fi

if [ ${#miss_req[@]} -gt 0 ]; then
	apt_install --show-errors "${miss_req[@]}" ||
		die "could not install required packages: ${miss_req[*]}"
fi

if [ ${#miss_opt[@]} -gt 0 ]; then
	# All at once first; if that fails, one by one, so that one package
	# this release or architecture lacks does not keep out the others.
	if ! apt_install "${miss_opt[@]}"; then
		for p in "${miss_opt[@]}"; do
			apt_install "$p" ||
				warn "could not install optional package $p ($(grep -m1 '^E:' "$log" || echo 'apt-get failed')); what needs it is skipped"
		done
	fi
fi

# Check again, after the fact.
mapfile -t miss_req < <(missing_of REQUIRED)
[ ${#miss_req[@]} -eq 0 ] || die "still missing: ${miss_req[*]}"
cc_ok || die "no C compiler (cc) on PATH"
cmake_ok || die "cmake >= $CMAKE_MIN is needed; found: $(cmake --version 2>/dev/null | head -n 1)"
mapfile -t miss_opt < <(missing_of OPTIONAL)
if [ ${#miss_opt[@]} -gt 0 ]; then
	warn "optional packages still missing: ${miss_opt[*]}"
fi
say "done"
