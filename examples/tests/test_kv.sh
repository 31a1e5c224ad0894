#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_kv.sh KV_BINARY - drive evq-kv with redis-cli and redis-benchmark
# (and nc for what they will not send) on the backend named by
# EVQ_BACKEND: every command with its options and errors (wrong number of
# arguments, syntax, a value that is not an integer), keys expiring by the
# timer alone, a 1 MiB value byte-identical, pipelining (redis-cli --pipe,
# redis-benchmark -P), an idle server not spinning after the load,
# malformed requests answered with -ERR and the connection closed, and a
# clean exit on SIGTERM.
# Exit 0 on success, 1 on failure, 77 when a tool or the backend is missing.
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
need_tools redis-cli redis-benchmark nc cmp timeout

cli() { timeout 10 redis-cli --no-raw -p $PORT "$@"; }
# is EXPECTED COMMAND...: redis-cli's answer (all lines, joined by '|').
is() {
	local want=$1 got
	shift
	got=$(cli "$@" 2>&1 | tr '\n' '|' | sed 's/|$//')
	[ "$got" = "$want" ] || fail "$* -> '$got', want '$want'"
}
# raw EXPECTED BYTES: send BYTES (printf format) with nc, compare the answer.
raw() {
	local want=$1 got
	got=$(printf -- "$2" | timeout 10 nc -N 127.0.0.1 $PORT | od -An -c | tr -s ' \n' ' ')
	want=$(printf -- "$want" | od -An -c | tr -s ' \n' ' ')
	[ "$got" = "$want" ] || fail "raw '$2' -> '$got', want '$want'"
}

echo "# usage on a bad argument"
"$BIN" notaport > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-kv \[PORT\]" "$T/usage" || fail "no usage line"

start_server "$BIN" 0
echo "# PING, ECHO"
is PONG PING
is '"hi"' PING hi
is '"hello world"' ECHO "hello world"
is "(error) ERR wrong number of arguments for 'echo' command" ECHO
echo "# SET, GET and SET's options"
is OK SET k v
is '"v"' GET k
is '(nil)' GET nope
is '(nil)' SET k v2 NX
is OK SET k v3 XX
is '"v3"' GET k
is '(nil)' SET nope v XX
is '(nil)' GET nope
is OK SET fresh v NX
is OK SET k v EX 100
is '(integer) 100' TTL k
is OK SET k v PX 5000
p=$(cli PTTL k | sed 's/(integer) //')
[ "$p" -gt 4000 ] && [ "$p" -le 5000 ] || fail "PTTL after PX 5000: $p"
is OK SET k v2 KEEPTTL
[ "$(cli TTL k)" = "(integer) 5" ] || fail "KEEPTTL lost the TTL: $(cli TTL k)"
is OK SET k v
is '(integer) -1' TTL k
is "(error) ERR syntax error" SET k v FOO
is "(error) ERR syntax error" SET k v NX XX
is "(error) ERR syntax error" SET k v EX 10 PX 10
is "(error) ERR syntax error" SET k v EX
is "(error) ERR value is not an integer or out of range" SET k v EX ten
is "(error) ERR invalid expire time in 'set' command" SET k v EX 0
is "(error) ERR invalid expire time in 'set' command" SET k v PX -5
is "(error) ERR wrong number of arguments for 'set' command" SET k
is "(error) ERR wrong number of arguments for 'get' command" GET
is "(error) ERR wrong number of arguments for 'get' command" GET a b
echo "# DEL, EXISTS"
is OK SET d1 x
is OK SET d2 x
is '(integer) 3' EXISTS d1 d2 d1 nope
is '(integer) 2' DEL d1 d2 nope
is '(integer) 0' EXISTS d1 d2
echo "# INCR, DECR; a value that is not an integer (the type error)"
is '(integer) 1' INCR counter
is '(integer) 2' INCR counter
is '(integer) 1' DECR counter
is '(integer) -1' DECR newcounter
is OK SET text abc
is "(error) ERR value is not an integer or out of range" INCR text
is '"abc"' GET text
is OK SET lead 007
is "(error) ERR value is not an integer or out of range" INCR lead
is OK SET max 9223372036854775807
is "(error) ERR increment or decrement would overflow" INCR max
echo "# MSET, MGET"
is OK MSET m1 a m2 b
is '1) "a"|2) (nil)|3) "b"' MGET m1 nope m2
is "(error) ERR wrong number of arguments for 'mset' command" MSET m1 a m2
echo "# EXPIRE, TTL"
is '(integer) -2' TTL nope
is '(integer) 0' EXPIRE nope 10
is '(integer) 1' EXPIRE m1 100
is '(integer) 100' TTL m1
is "(error) ERR value is not an integer or out of range" EXPIRE m1 soon
is '(integer) 1' EXPIRE m1 0
is '(nil)' GET m1
echo "# keys expire by the timer, with nobody asking for them"
is OK FLUSHALL
# One connection, so that all is set well before the first deadline.
printf '%s\n' 'SET e1 x PX 1500' 'SET e2 x EX 1' 'SET stays x' 'SET e3 x PX 1200' \
	'MSET e4 x e5 y' 'EXPIRE e4 1' 'DBSIZE' | timeout 10 redis-cli -p $PORT > "$T/exp"
[ "$(tr '\n' ' ' < "$T/exp")" = "OK OK OK OK OK 1 6 " ] || fail "expiring keys: $(cat "$T/exp")"
sleep 2.5
is '(integer) 2' DBSIZE		# no GET ran: the timer deleted them
is '(integer) 1' EXISTS e5
echo "# FLUSHALL, COMMAND, SELECT, unknown commands"
is OK FLUSHALL
is '(integer) 0' DBSIZE
is OK FLUSHALL ASYNC
is '(empty array)' COMMAND
cli COMMAND COUNT | grep -q '^(integer) [0-9]' || fail "COMMAND COUNT"
is OK SELECT 0
is "(error) ERR DB index is out of range" SELECT 1
is "(error) ERR unknown command 'NOPE', with args beginning with: 'a' 'b' " NOPE a b
echo "# redis-cli's own start (no command: reads them from stdin)"
printf 'SET viastdin 1\nGET viastdin\n' | timeout 10 redis-cli -p $PORT > "$T/stdin"
[ "$(tr '\n' ' ' < "$T/stdin")" = "OK 1 " ] || fail "redis-cli from stdin: $(cat "$T/stdin")"

echo "# a 1 MiB value, byte-identical"
head -c 1048576 /dev/urandom > "$T/big"
timeout 10 redis-cli -p $PORT -x SET big < "$T/big" > /dev/null || fail "SET big"
timeout 10 redis-cli -p $PORT --raw GET big > "$T/big.out" || fail "GET big"
truncate -s -1 "$T/big.out"	# redis-cli adds a newline
cmp "$T/big" "$T/big.out" || fail "1 MiB value differs"

echo "# pipelining: redis-cli --pipe with 10000 commands, nc with three"
for i in $(seq 10000); do printf 'SET p:%d %d\r\n' $i $i; done > "$T/mass"
timeout 30 redis-cli -p $PORT --pipe < "$T/mass" > "$T/pipe" 2>&1 || fail "--pipe: $(cat "$T/pipe")"
grep -q "errors: 0, replies: 10000" "$T/pipe" || fail "--pipe: $(cat "$T/pipe")"
is '"777"' GET p:777
raw '+PONG\r\n+OK\r\n$1\r\n1\r\n' 'PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\nq\r\n'
echo "# redis-benchmark, 20 clients, plain and pipelined"
timeout 60 redis-benchmark -p $PORT -t set,get,incr,mset -n 5000 -c 20 -q > "$T/bench" 2>&1 ||
	fail "redis-benchmark: $(cat "$T/bench")"
timeout 60 redis-benchmark -p $PORT -t set,get -n 20000 -c 20 -P 16 -q > "$T/bench" 2>&1 ||
	fail "redis-benchmark -P 16: $(cat "$T/bench")"
grep -q "WARNING\|rror" "$T/bench" && fail "redis-benchmark: $(cat "$T/bench")"

echo "# idle after the load: the loop sleeps, it does not keep spinning"
# (evq-kv looks for requests for up to EVQ_KV_SPIN_US before it sleeps.)
ticks() { awk '{ print $14 + $15 }' /proc/$SRV/stat; }
sleep 0.2
t0=$(ticks)
sleep 1
t1=$(ticks)
[ $((t1 - t0)) -le $(($(getconf CLK_TCK) / 10)) ] ||
	fail "an idle evq-kv used $((t1 - t0)) ticks of CPU in 1 s"

echo "# malformed requests: -ERR, then the connection is closed"
raw '+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n' '*1\r\n$4\r\nPING\r\n*x\r\n*1\r\n$4\r\nPING\r\n'
raw "-ERR Protocol error: expected '\$', got 'P'\r\n" '*1\r\nPING\r\n'
raw '-ERR Protocol error: invalid bulk length\r\n' '*1\r\n$-5\r\n'
raw '-ERR Protocol error: invalid bulk length\r\n' '*2\r\n$3\r\nGET\r\n$999999999999\r\n'
raw '-ERR Protocol error: invalid multibulk length\r\n' '*99999999\r\n'
head -c 70000 /dev/zero | tr '\0' a > "$T/long"
got=$(timeout 10 nc -N 127.0.0.1 $PORT < "$T/long")
[ "$got" = $'-ERR Protocol error: too big inline request\r' ] || fail "too big inline: '$got'"
echo "# ... and a command error keeps it open"
raw "-ERR unknown command 'NOPE', with args beginning with: \r\n+PONG\r\n" 'NOPE\r\nPING\r\n'
raw '+OK\r\n' 'QUIT\r\nPING\r\n'
is PONG PING

echo "# SIGTERM with a client connected and keys expiring: exits, freeing all"
is OK SET later x EX 1000
exec 3<> /dev/tcp/127.0.0.1/$PORT
stop_server
exec 3<&-
echo "ok - evq-kv on ${EVQ_BACKEND:-auto}"
