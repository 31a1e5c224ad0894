#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_httpd.sh HTTPD_BINARY - drive evq-httpd with curl (and nc for what
# curl will not send) on the backend named by EVQ_BACKEND: every status
# code it answers (200 400 403 404 405 414 431), Content-Type and
# index.html, HEAD, a 1 MiB file byte-identical (alone, x16, then a small
# file on the same connection), 3 MiB + 1 read slowly, keep-alive reuse,
# pipelined requests, a bad request followed by a good one on a new
# connection, traversal attempts (.., percent-encoded, symlinks out of
# DIR) refused, the idle timeout, and a clean exit on SIGTERM.
# Exit 0 on success, 1 on failure, 77 when a tool or the backend is missing.
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
need_tools curl nc cmp timeout
IDLE=
cleanup_extra() { [ -n "$IDLE" ] && kill "$IDLE" 2>/dev/null; }

# The tree served: DIR is $T/www; $T/secret lies outside it.
W=$T/www
mkdir -p "$W/docs" "$W/noindex"
echo '<h1>evq</h1>' > "$W/index.html"
echo 'body { color: red }' > "$W/docs/style.css"
echo '{"a": 1}' > "$W/docs/data.json"
echo '<p>docs</p>' > "$W/docs/index.html"
echo 'noindex' > "$W/noindex/file.txt"
head -c 1048576 /dev/urandom > "$W/big.bin"
head -c 3145729 /dev/urandom > "$W/huge.bin"	# 3 MiB + 1: several blocks
echo 'TOP SECRET' > "$T/secret"
ln -s "$T/secret" "$W/leak"		# a symlink out of DIR
ln -s "$T" "$W/up"			# a directory symlink out of DIR
ln -s docs/style.css "$W/alias.css"	# a symlink inside DIR: fine


# status PATH [curl options...]: print the status code of one request.
status() {
	local path=$1
	shift
	timeout 10 curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$@" \
		"http://127.0.0.1:$PORT$path"
}
expect() {	# expect CODE PATH [curl options...]
	local want=$1 got
	shift
	got=$(status "$@")
	[ "$got" = "$want" ] || fail "$(printf '%.150s' "$*") -> $got, want $want"
	grep -q "TOP SECRET" "$T/body" && fail "$1 served the secret"
	return 0
}

echo "# usage on bad arguments"
"$BIN" > /dev/null 2> "$T/usage"
[ $? -eq 2 ] && grep -q "^usage: evq-httpd DIR \[PORT\]" "$T/usage" || fail "no usage line"
"$BIN" "$W" notaport > /dev/null 2> "$T/usage"
[ $? -eq 2 ] || fail "no usage on a bad port"
"$BIN" "$T/nope" 0 > /dev/null 2> "$T/usage"
[ $? -eq 1 ] && grep -q "$T/nope: No such file" "$T/usage" || fail "missing DIR: $(cat "$T/usage")"

start_server "$BIN" "$W" 0

echo "# idle timeout: a connection that says nothing is closed (in the background)"
(
	exec 3<> /dev/tcp/127.0.0.1/$PORT || exit 1
	s=$(date +%s)
	cat <&3 > /dev/null
	echo $(( $(date +%s) - s )) > "$T/idle"
) &
IDLE=$!

echo "# 200: files, Content-Type, index.html, a symlink inside DIR"
expect 200 /index.html
cmp -s "$T/body" "$W/index.html" || fail "index.html differs"
[ "$(curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:$PORT/docs/style.css)" = "text/css; charset=utf-8" ] || fail "css type"
[ "$(curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:$PORT/docs/data.json)" = "application/json" ] || fail "json type"
[ "$(curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:$PORT/big.bin)" = "application/octet-stream" ] || fail "default type"
expect 200 /
cmp -s "$T/body" "$W/index.html" || fail "/ is not index.html"
[ "$(curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:$PORT/)" = "text/html; charset=utf-8" ] || fail "index type"
expect 200 /docs/
cmp -s "$T/body" "$W/docs/index.html" || fail "/docs/ is not docs/index.html"
expect 200 /docs
expect 200 '/docs/style.css?v=1#top'
expect 200 /alias.css
cmp -s "$T/body" "$W/docs/style.css" || fail "alias.css differs"
expect 200 /docs%2Fstyle.css
expect 200 //docs/./style.css

echo "# HEAD: the header with Content-Length, no body"
curl -s -I "http://127.0.0.1:$PORT/big.bin" > "$T/head" || fail "HEAD failed"
grep -q "^HTTP/1.1 200 OK" "$T/head" || fail "HEAD status: $(cat "$T/head")"
grep -qi "^Content-Length: 1048576" "$T/head" || fail "HEAD length: $(cat "$T/head")"

echo "# 1 MiB, byte-identical"
timeout 20 curl -s -o "$T/big.out" "http://127.0.0.1:$PORT/big.bin" || fail "1 MiB: curl failed"
cmp "$W/big.bin" "$T/big.out" || fail "1 MiB differs"

echo "# 16 clients at once, 1 MiB each"
for i in $(seq 16); do
	timeout 30 curl -s -o "$T/c$i" "http://127.0.0.1:$PORT/big.bin" &
done
for p in $(jobs -p); do [ "$p" = "$SRV" ] || [ "$p" = "$IDLE" ] || wait $p; done
for i in $(seq 16); do
	cmp -s "$W/big.bin" "$T/c$i" || fail "client $i got different bytes"
done

echo "# 3 MiB + 1, read slowly: many blocks, short writes to a full socket"
timeout 30 curl -s --limit-rate 4M -o "$T/huge.out" \
	"http://127.0.0.1:$PORT/huge.bin" || fail "3 MiB: curl failed"
cmp "$W/huge.bin" "$T/huge.out" || fail "3 MiB + 1 differs"

echo "# a big body then a small one on one connection (the pipe is empty)"
timeout 20 curl -s -o "$T/k1" -o "$T/k2" "http://127.0.0.1:$PORT/big.bin" \
	"http://127.0.0.1:$PORT/docs/style.css" || fail "big then small: curl failed"
cmp -s "$W/big.bin" "$T/k1" || fail "big then small: the big body differs"
cmp -s "$W/docs/style.css" "$T/k2" || fail "big then small: the small one differs"

echo "# keep-alive: two URLs, one connection"
timeout 10 curl -sv -o /dev/null -o /dev/null "http://127.0.0.1:$PORT/" \
	"http://127.0.0.1:$PORT/docs/style.css" 2> "$T/verbose" || fail "keep-alive: curl failed"
grep -q "Re-using existing connection" "$T/verbose" || fail "keep-alive: connection not reused"
[ "$(grep -c "Connected to" "$T/verbose")" = 1 ] || fail "keep-alive: more than one connect"

echo "# pipelining: three requests in one write, three answers in order"
printf 'GET /docs/style.css HTTP/1.1\r\nHost: t\r\n\r\nHEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' |
	timeout 10 nc -N 127.0.0.1 $PORT > "$T/pipe"
[ "$(grep -c '^HTTP/1.1 ' "$T/pipe")" = 3 ] || fail "pipelining: $(cat "$T/pipe")"
grep '^HTTP/1.1 ' "$T/pipe" | tr -d '\r' | tr '\n' '|' > "$T/codes"
[ "$(cat "$T/codes")" = "HTTP/1.1 200 OK|HTTP/1.1 200 OK|HTTP/1.1 404 Not Found|" ] || fail "pipelining order: $(cat "$T/codes")"
grep -q "color: red" "$T/pipe" || fail "pipelining: body missing"
grep -q "<h1>evq</h1>" "$T/pipe" && fail "pipelining: HEAD sent a body"

echo "# 404, 403, 405, 414, 431"
expect 404 /nope
expect 404 /docs/nope.html
expect 403 /noindex/
expect 405 / -X POST -d x
expect 405 / -X DELETE
grep -q "405" "$T/body" || fail "405 has no small body"
expect 414 "/$(head -c 9000 /dev/zero | tr '\0' a)"
expect 431 / -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' b)"
expect 404 "/$(head -c 3000 /dev/zero | tr '\0' c)"	# ENAMETOOLONG

echo "# traversal: .., percent-encoded, symlinks out of DIR: all refused"
expect 403 /../secret
expect 403 /docs/../../secret
expect 403 /%2e%2e/secret
expect 403 /%2E%2E%2Fsecret
expect 403 /docs/..%2f..%2fsecret
expect 403 /leak
expect 403 /up/secret
expect 404 /%252e%252e/secret		# double-encoded: just a name
expect 400 /a%00b
expect 400 /bad%zz

echo "# a bad request, then a good one on a new connection"
printf 'GARBAGE\r\n\r\n' | timeout 10 nc -N 127.0.0.1 $PORT > "$T/bad"
head -n 1 "$T/bad" | grep -q "^HTTP/1.1 400 Bad Request" || fail "garbage: $(cat "$T/bad")"
grep -q "^Connection: close" "$T/bad" || fail "400 does not close"
printf 'GET / HTTP/1.1\r\n\r\n' | timeout 10 nc -N 127.0.0.1 $PORT | head -n 1 |
	grep -q "400" || fail "HTTP/1.1 without Host is not 400"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 nc -N 127.0.0.1 $PORT | head -n 1 |
	grep -q "200" || fail "HTTP/1.0 without Host is not 200"
printf 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /docs/ HTTP/1.0\r\n\r\n' |
	timeout 10 nc -N 127.0.0.1 $PORT > "$T/ka10"
[ "$(grep -c '^HTTP/1.1 200' "$T/ka10")" = 2 ] && grep -q "^Connection: keep-alive" "$T/ka10" ||
	fail "HTTP/1.0 keep-alive: $(cat "$T/ka10")"
printf 'GET / HTTP/2.0\r\nHost: t\r\n\r\n' | timeout 10 nc -N 127.0.0.1 $PORT | head -n 1 |
	grep -q "400" || fail "HTTP/2.0 is not 400"
expect 200 /

echo "# the idle connection was closed after 10 s"
wait $IDLE
IDLE=
idle=$(cat "$T/idle" 2>/dev/null)
[ -n "$idle" ] && [ "$idle" -ge 8 ] && [ "$idle" -le 14 ] || fail "idle connection lasted '${idle}' s"

echo "# SIGTERM with a client connected: exits, closing it"
exec 3<> /dev/tcp/127.0.0.1/$PORT
stop_server
exec 3<&-
echo "ok - evq-httpd on ${EVQ_BACKEND:-auto}"
