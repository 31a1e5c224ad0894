#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cp.sh CP_BINARY - evq-cp on the backend named by EVQ_BACKEND: files
# of 0 B, 1 B, 1 MiB + 1 and 64 MiB come out byte-identical (cmp), and a
# missing source, an unwritable destination and a full "disk"
# (RLIMIT_FSIZE) each fail with the path and the reason, exit status 1.
# Exit 0 on success, 1 on failure, 77 when the backend is missing.
set -u
BIN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$BIN" > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-cp SRC DST" "$T/usage" || fail "no usage line"

: > "$T/probe"
if ! "$BIN" "$T/probe" "$T/probe.out" 2> "$T/err"; then
	if grep -q "loop: " "$T/err"; then
		echo "skip: backend ${EVQ_BACKEND:-auto} unavailable: $(cat "$T/err")"
		exit 77
	fi
fi

for size in 0 1 1048577 67108864; do
	echo "# $size bytes"
	head -c $size /dev/urandom > "$T/src"
	chmod 640 "$T/src"
	rm -f "$T/dst"
	"$BIN" "$T/src" "$T/dst" || fail "copy of $size bytes failed"
	cmp "$T/src" "$T/dst" || fail "copy of $size bytes differs"
	[ "$(stat -c %a "$T/dst")" = 640 ] || fail "mode not copied"
done
echo "# over an existing, longer file: truncated"
head -c 100 /dev/urandom > "$T/src"
"$BIN" "$T/src" "$T/dst" && cmp "$T/src" "$T/dst" || fail "overwrite"

echo "# a missing source"
"$BIN" "$T/nope" "$T/dst2" 2> "$T/err"
[ $? -eq 1 ] || fail "missing source: exit status not 1"
grep -q "$T/nope: No such file or directory" "$T/err" || fail "missing source: $(cat "$T/err")"

echo "# an unwritable destination"
"$BIN" "$T/src" "$T/no/such/dir/dst" 2> "$T/err"
[ $? -eq 1 ] || fail "bad destination: exit status not 1"
grep -q "$T/no/such/dir/dst: No such file or directory" "$T/err" || fail "bad destination: $(cat "$T/err")"

echo "# a source that is a directory"
"$BIN" "$T" "$T/dst3" 2> "$T/err"
[ $? -eq 1 ] && grep -q "Is a directory" "$T/err" || fail "directory source: $(cat "$T/err")"

echo "# a full disk: RLIMIT_FSIZE of 1 MiB, a 4 MiB file"
head -c 4194304 /dev/urandom > "$T/src"
( ulimit -f 1024; exec "$BIN" "$T/src" "$T/dst4" ) 2> "$T/err"
[ $? -eq 1 ] || fail "full disk: exit status not 1"
grep -q "$T/dst4: File too large" "$T/err" || fail "full disk: $(cat "$T/err")"
echo "ok - evq-cp on ${EVQ_BACKEND:-auto}"
