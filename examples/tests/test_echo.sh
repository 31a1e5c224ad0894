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
. "$(dirname "$0")/lib.sh"
need_tools socat nc cmp timeout prlimit

echo "# usage on a bad argument"
"$BIN" notaport > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-echo" "$T/usage" || fail "no usage line"

start_server "$BIN" 0
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
stop_server

echo "# out of fds: 40 clients against an fd limit of 24"
start_server prlimit --nofile=24:24 "$BIN" 0
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
stop_server
echo "ok - evq-echo on ${EVQ_BACKEND:-auto}"
