#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak.sh - run examples/evq-echo under load on each backend (issue 13,
# item 3; docs/RELIABILITY.md).
#
#   tests/soak/soak.sh BUILD_DIR SECONDS [BACKEND...]
#
# Per backend: start evq-echo on a free loopback port, run soak_client
# against it for SECONDS, and sample the server's open fds and RSS each
# second (the series is printed). Fails when a byte is wrong (the client
# says so), when the server dies, or when the series is not flat: after
# the load, fds must be back to their value before it (after a 1 s
# warm-up), and the RSS of the
# second half of the run may not exceed that of the first half by more
# than 25% + 4 MiB (growth that never stops is a leak; buffers and pools
# warming up in the first half are not).
set -uo pipefail
build=${1:?build dir}
secs=${2:-60}
shift 2 || true
backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(uring aio epoll poll)
echo_bin=$build/examples/evq-echo
client=$build/tests/soak_client
status=0

for b in "${backends[@]}"; do
	log=$(mktemp)
	# Under ASan, freed memory waits in a quarantine (256 MiB by default)
	# and the RSS series would show that, not evq: keep it small.
	EVQ_BACKEND=$b ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" \
		"$echo_bin" 0 >"$log" 2>&1 &
	pid=$!
	for _ in $(seq 50); do
		grep -q listening "$log" && break
		sleep 0.1
	done
	port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
	if [ -z "$port" ]; then
		if grep -qiE "not available|not supported|Operation not supported|Function not implemented" "$log"; then
			echo "soak[$b]: SKIP: $(head -1 "$log")"
		else
			echo "soak[$b]: FAIL: evq-echo did not start: $(head -3 "$log")"
			status=1
		fi
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$log"
		continue
	fi
	# Warm up for a second first: lazily made objects (the thread pool
	# and its eventfd, pool buffers) are not leaks.
	"$client" "$port" 1 4 >/dev/null 2>&1
	sleep 1
	fd0=$(ls /proc/$pid/fd | wc -l)
	"$client" "$port" "$secs" 8 > "$log.client" 2>&1 &
	cpid=$!
	fds=() rss=()
	for ((i = 0; i < secs; i++)); do
		sleep 1
		kill -0 "$pid" 2>/dev/null || break
		fds+=("$(ls /proc/$pid/fd 2>/dev/null | wc -l)")
		rss+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
	done
	wait "$cpid"; crc=$?
	sleep 1
	fd1=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
	echo "soak[$b]: fds/s:  ${fds[*]}  (before $fd0, after the load $fd1)"
	echo "soak[$b]: rss kB/s: ${rss[*]}"
	sed "s/^/soak[$b]: /" "$log.client"
	bad=""
	kill -0 "$pid" 2>/dev/null || bad="server died: $(tail -3 "$log")"
	[ "$crc" -ne 0 ] && bad="$bad client saw errors;"
	[ "$fd1" != "$fd0" ] && bad="$bad fds $fd0 before, $fd1 after;"
	n=${#rss[@]}
	if [ "$n" -ge 4 ]; then
		h=$((n / 2))
		max1=$(printf '%s\n' "${rss[@]:0:h}" | sort -n | tail -1)
		max2=$(printf '%s\n' "${rss[@]:h}" | sort -n | tail -1)
		limit=$((max1 + max1 / 4 + 4096))
		[ "$max2" -gt "$limit" ] && bad="$bad RSS grew: first half max $max1 kB, second half max $max2 kB;"
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"; src=$?
	[ "$src" -ne 0 ] && [ -z "$bad" ] && bad="evq-echo exited with $src on SIGTERM: $(tail -3 "$log")"
	if [ -n "$bad" ]; then
		echo "soak[$b]: FAIL: $bad"
		status=1
	else
		echo "soak[$b]: ok"
	fi
	rm -f "$log" "$log.client"
done
exit $status
