# SPDX-License-Identifier: MIT
# lib.sh - sourced by the example servers' tests (test_echo.sh,
# test_httpd.sh, test_kv.sh): a scratch directory $T, fail(), need_tools,
# and one server at a time started and stopped by its PID.
#
#   need_tools TOOL...     exit 77 (skip) when one is not installed
#   start_server CMD...    run CMD (which prints "listening on
#                          127.0.0.1:PORT"), set SRV and PORT; exit 77 when
#                          the backend is unavailable here
#   stop_server            SIGTERM; the server must exit 0 within 5 s
#                          (under ASan: with nothing leaked)
#   cleanup_extra          define it to clean up more at exit
T=$(mktemp -d)
SRV=
cleanup_extra() { :; }
lib_cleanup() {
	cleanup_extra
	[ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null
	rm -rf "$T"
}
trap lib_cleanup EXIT

fail() { echo "FAIL: $*"; [ -f "$T/server.err" ] && cat "$T/server.err"; exit 1; }

need_tools() {
	local tool
	for tool; do
		command -v "$tool" >/dev/null ||
			{ echo "skip: $tool not installed"; exit 77; }
	done
}

start_server() {
	: > "$T/server.out"
	"$@" > "$T/server.out" 2> "$T/server.err" &
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

stop_server() {
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
