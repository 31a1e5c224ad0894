#!/bin/sh
# SPDX-License-Identifier: MIT
#
# gen.sh HEADER OUTDIR VERSION TEMPLATE...
#
# Make the man pages: OUTDIR/<page>.3 from each <page>.3.in (gen.awk does
# the work), and for every other name in a page's NAME line a one-line
# page "<name>.3" that sources it (.so, as liburing does), so that
# `man evq_io_stop` finds evq_io_start(3). OUTDIR is emptied first.
# Problems go to OUTDIR.warnings (empty when there are none); the
# man_pages test (man/check.sh) fails on any. POSIX sh and awk.
set -eu

header=$1 out=$2 version=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
warn=$out.warnings

rm -rf "$out"
mkdir -p "$out"
: >"$warn"

for t in "$@"; do
	page=$(basename "$t" .in)
	awk -f "$here/gen.awk" -v version="$version" -v warn="$warn" \
		-v page="$page" "$header" "$t" >"$out/$page"
done

# Alias pages. The NAME line is the one after ".SH NAME".
for t in "$@"; do
	page=$(basename "$t" .in)
	names=$(sed -n '/^\.SH NAME/{n;s/ *\\-.*//;s/,/ /g;p;q;}' "$t")
	for name in $names; do
		[ "$name.3" = "$page" ] && continue
		if [ -e "$out/$name.3" ]; then
			echo "$page: $name is already on $(head -n 1 "$out/$name.3")" >>"$warn"
			continue
		fi
		printf '.so man3/%s\n' "$page" >"$out/$name.3"
	done
done
