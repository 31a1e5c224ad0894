#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check.sh HEADER MANDIR - the man_pages test: the pages gen.sh made in
# MANDIR/man3 are complete and clean.
#  - gen.sh reported no problem (MANDIR/man3.warnings is empty);
#  - every EVQ_API function of HEADER has a page (its own or a .so);
#  - every page renders with `groff -man -ww -z` without a warning, and
#    with `man -l` when man-db is installed (its seccomp sandbox off:
#    some containers refuse it).
set -eu

header=$1 mandir=$2
fail=0
bad() { printf 'man_pages: %s\n' "$*" >&2; fail=1; }

cd "$mandir"
[ -d man3 ] || { bad "no $mandir/man3: build the evq_man target"; exit 1; }
if [ -s man3.warnings ]; then
	sed 's/^/man_pages: /' man3.warnings >&2
	fail=1
fi

api=$(sed -nE 's/^EVQ_API[^(]*[^A-Za-z0-9_(]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\(.*/\1/p' "$header" | sort -u)
[ -n "$api" ] || bad "no EVQ_API function found in $header"
n=0
for f in $api; do
	n=$((n + 1))
	[ -f "man3/$f.3" ] || bad "$f: no page man3/$f.3"
done

command -v groff >/dev/null 2>&1 ||
	{ bad "groff not found (Debian: groff-base)"; exit 1; }
pages=0
for p in man3/*.3; do
	pages=$((pages + 1))
	# .so lines are resolved from here, as man does from its man root.
	out=$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$p" 2>&1) ||
		bad "$p: groff failed"
	[ -z "$out" ] || bad "$p: groff: $out"
	if command -v man >/dev/null 2>&1; then
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man --warnings -E UTF-8 -l "$p" 2>&1 >/dev/null) ||
			bad "$p: man -l failed"
		[ -z "$out" ] || bad "$p: man -l: $out"
	fi
done

[ $fail = 0 ] || exit 1
printf 'man_pages: %d functions, %d pages (with .so links), all clean\n' "$n" "$pages"
