#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_echo.sh ECHO_BINARY - drive evq-echo with clients nobody here wrote
# (socat, nc) on the backend named by EVQ_BACKEND: a line, 1 MiB
# byte-identical, 32 clients at once, a client that reads slowly
# (backpressure: nothing lost), running out of fds (no busy loop, and it
# accepts again after), and a clean exit on SIGTERM.
# Exit 0 on success, 1 on failure, 77 when a tool or the backend is missing.
set -u
BIN=$1
for tool in socat nc cmp timeout; do
	command -v $tool >/dev/null || { echo "skip: $tool not installed"; exit 77; }
done
T=$(mktemp -d)
SRV=
cleanup() {
	[ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$T/server.err" ] && cat "$T/server.err"; exit 1; }

# Start the server on a free port; $1: extra command prefix (prlimit ...).
start() {
	: > "$T/server.out"
	$1 "$BIN" 0 > "$T/server.out" 2> "$T/server.err" &
	SRV=$!
	for _ in $(seq 100); do
		PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$T/server.out")
		[ -n "$PORT" ] && return 0
		kill -0 $SRV 2>/dev/null || break
		sleep 0.05
	done
	if grep -q "Operation not supported\|Function not implemented\|Operation not permitted" "$T/server.err"; then
		echo "skip: backend ${EVQ_BACKEND:-auto} unavailable: $(cat "$T/server.err")"
		exit 77
	fi
	fail "server did not start"
}

# Stop with SIGTERM; it must exit 0 (ASan builds: and leak nothing).
stop() {
	kill -TERM $SRV
	for _ in $(seq 100); do
		kill -0 $SRV 2>/dev/null || break
		sleep 0.05
	done
	kill -0 $SRV 2>/dev/null && fail "server still running 5 s after SIGTERM"
	wait $SRV
	local rc=$?
	SRV=
	[ $rc -eq 0 ] || fail "server exit status $rc after SIGTERM"
}

echo "# usage on a bad argument"
"$BIN" notaport > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-echo" "$T/usage" || fail "no usage line"

start ""
echo "# a line through socat"
out=$(printf 'hello evq\n' | timeout 10 socat -t 5 - TCP:127.0.0.1:$PORT)
[ "$out" = "hello evq" ] || fail "socat got '$out'"

echo "# 1 MiB through nc, byte-identical"
head -c 1048576 /dev/urandom > "$T/big"
timeout 20 nc -N 127.0.0.1 $PORT < "$T/big" > "$T/big.out" || fail "nc failed"
cmp "$T/big" "$T/big.out" || fail "1 MiB echo differs"

echo "# 32 clients at once, 64 KiB each"
head -c 65536 /dev/urandom > "$T/small"
for i in $(seq 32); do
	timeout 20 nc -N 127.0.0.1 $PORT < "$T/small" > "$T/c$i" &
done
wait_clients() { for p in $(jobs -p); do [ "$p" = "$SRV" ] || wait $p; done; }
wait_clients
for i in $(seq 32); do
	cmp -s "$T/small" "$T/c$i" || fail "client $i got different bytes"
done

echo "# a slow reader: 8 MiB, the client reads nothing for 2 s"
head -c 8388608 /dev/urandom > "$T/huge"
timeout 30 nc -N 127.0.0.1 $PORT < "$T/huge" | { sleep 2; cat > "$T/huge.out"; }
cmp "$T/huge" "$T/huge.out" || fail "slow reader lost or changed bytes"
stop

echo "# out of fds: 40 clients against an fd limit of 24"
start "prlimit --nofile=24:24"
for i in $(seq 40); do
	(sleep 3 | timeout 15 nc -N 127.0.0.1 $PORT > /dev/null 2>&1) &
done
sleep 1
# While it is out of fds it must not spin: under 0.3 s of CPU in 1 s.
cpu() { awk '{print $14 + $15}' /proc/$SRV/stat; }
c0=$(cpu); sleep 1; c1=$(cpu)
hz=$(getconf CLK_TCK)
[ $(( (c1 - c0) * 10 )) -lt $(( 3 * hz )) ] ||
	fail "server used $(( c1 - c0 )) ticks (of $hz/s) while out of fds"
wait_clients
echo "# ... and it accepts again once fds are free"
out=$(printf 'again\n' | timeout 10 socat -t 5 - TCP:127.0.0.1:$PORT)
[ "$out" = "again" ] || fail "after EMFILE, socat got '$out'"
stop
echo "ok - evq-echo on ${EVQ_BACKEND:-auto}"
