#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_proxy.sh PROXY_BINARY ECHO_BINARY - evq-proxy in front of evq-echo,
# driven by socat and nc, on the backend named by EVQ_BACKEND: 4 MiB
# byte-identical through both directions (half-close carries the EOF
# through), 16 clients at once, a slow reader (nothing lost, the proxy's
# memory stays bounded), a refused connect reported, exit 0 on SIGTERM.
# Exit 0 on success, 1 on failure, 77 when a tool or the backend is missing.
set -u
PROXY=$1 ECHO=$2
for tool in socat nc cmp timeout; do
	command -v $tool >/dev/null || { echo "skip: $tool not installed"; exit 77; }
done
T=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$T"/*.err 2>/dev/null; exit 1; }

# start NAME CMD...: run it, wait for its "listening on" line, set PORT.
start() {
	local name=$1; shift
	"$@" > "$T/$name.out" 2> "$T/$name.err" &
	PIDS+=($!)
	LAST=$!
	for _ in $(seq 100); do
		PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$T/$name.out")
		[ -n "$PORT" ] && return 0
		kill -0 $LAST 2>/dev/null || break
		sleep 0.05
	done
	if grep -q "loop: " "$T/$name.err"; then
		echo "skip: backend ${EVQ_BACKEND:-auto} unavailable: $(cat "$T/$name.err")"
		exit 77
	fi
	fail "$name did not start"
}
stop() {
	kill -TERM $1
	for _ in $(seq 100); do kill -0 $1 2>/dev/null || break; sleep 0.05; done
	kill -0 $1 2>/dev/null && fail "pid $1 still running 5 s after SIGTERM"
	wait $1 || fail "exit status $? after SIGTERM"
	# Reaped: its number may belong to another process by the exit trap.
	local p left=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || left+=("$p"); done
	PIDS=("${left[@]}")
}

"$PROXY" 1 > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-proxy" "$T/usage" || fail "no usage line"
rm "$T/usage"

start echo "$ECHO" 0; ECHO_PID=$LAST; ECHO_PORT=$PORT
start proxy "$PROXY" 0 127.0.0.1:$ECHO_PORT; PROXY_PID=$LAST

echo "# a line through socat"
out=$(printf 'via proxy\n' | timeout 10 socat -t 5 - TCP:127.0.0.1:$PORT)
[ "$out" = "via proxy" ] || fail "socat got '$out'"

echo "# 4 MiB both ways, byte-identical, EOF passed through"
head -c 4194304 /dev/urandom > "$T/big"
timeout 30 nc -N 127.0.0.1 $PORT < "$T/big" > "$T/big.out" || fail "nc failed"
cmp "$T/big" "$T/big.out" || fail "4 MiB through the proxy differs"

echo "# 16 clients at once"
head -c 262144 /dev/urandom > "$T/small"
CLIENTS=()
for i in $(seq 16); do
	timeout 30 nc -N 127.0.0.1 $PORT < "$T/small" > "$T/c$i" &
	CLIENTS+=($!)
done
for p in "${CLIENTS[@]}"; do wait $p; done
for i in $(seq 16); do
	cmp -s "$T/small" "$T/c$i" || fail "client $i got different bytes"
done

echo "# a slow reader: 16 MiB, nothing read for 2 s; proxy memory bounded"
head -c 16777216 /dev/urandom > "$T/huge"
timeout 60 nc -N 127.0.0.1 $PORT < "$T/huge" |
	{ sleep 2; grep VmRSS /proc/$PROXY_PID/status > "$T/rss"; cat > "$T/huge.out"; }
cmp "$T/huge" "$T/huge.out" || fail "slow reader lost or changed bytes"
rss=$(awk '{print $2}' "$T/rss")
[ "$rss" -lt 65536 ] || fail "proxy RSS $rss KiB while the reader stalled"

stop $PROXY_PID

echo "# a refused connect is reported and the client closed"
start refuse "$PROXY" 0 127.0.0.1:1; REFUSE_PID=$LAST
out=$(printf 'x\n' | timeout 10 socat -t 5 - TCP:127.0.0.1:$PORT 2>&1)
[ -z "$out" ] || fail "client got '$out' from a refused upstream"
sleep 0.2
grep -q "connect 127.0.0.1:1: Connection refused" "$T/refuse.err" ||
	fail "refused connect not reported: $(cat "$T/refuse.err")"
: > "$T/refuse.err"
stop $REFUSE_PID
stop $ECHO_PID
echo "ok - evq-proxy on ${EVQ_BACKEND:-auto}"
