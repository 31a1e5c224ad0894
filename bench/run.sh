#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh - run evq's benchmarks: the timed tables, then the
# instruction counts under callgrind (docs/BENCHMARKS.md).
#
#   bench/run.sh BUILD_DIR [evq-bench options]
#
# BUILD_DIR is a CMake build directory, Release mode (`make bench` makes
# build-release/ and calls this; `make bench-full` adds --full: every
# workload at full size). The options go to evq-bench (see
# `evq-bench --help`); a -c/--contender choice applies to the callgrind
# part too. The file workloads keep their test file and tree in
# BUILD_DIR/bench/bench-data/ (about 1 GiB; reused by later runs; delete
# it to reclaim the space). Environment:
#   EVQ_BENCH_CALLGRIND=0   skip the callgrind part
#   EVQ_BENCH_CG_EVENTS=N   its N (default 20000): runs N and 2N events
#   EVQ_BENCH_CG_JOBS=J     valgrind runs at once (default: CPUs online);
#                           instruction counts do not depend on it
#   EVQ_BENCH_MOUNT_TRACEFS=0  as root, do not mount tracefs (which the
#                           syscall counter needs) when it is not mounted
#   EVQ_BENCH_ECHO_CPUS=2   echo-*: the client on CPU 0, the server on
#                           CPU 1 (default: both on CPU 1, see BENCHMARKS.md)
#
# Results go to bench/results/: <workload>.csv/.png and summary.csv/.png
# from evq-bench, and callgrind.csv + callgrind.txt from here. Nothing
# there is committed. The last lines say where they are, and how much
# disk the test data takes.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
build=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
results=$here/results
bin=$build/bench/evq-bench
if [ ! -x "$bin" ]; then
	bin=$(find "$build" -name evq-bench -type f -perm -u+x 2>/dev/null |
	      head -n 1 || true)
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "run.sh: no evq-bench under $build (build it first)" >&2
	exit 1
fi

# Where -c/--contender applies, keep it for the callgrind part.
cg_filter=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-c | --contender) cg_filter=(-c "${args[i + 1]:-}") ;;
	--contender=*) cg_filter=(-c "${args[i]#--contender=}") ;;
	-c?*) cg_filter=(-c "${args[i]#-c}") ;;
	esac
done

# Where the file workloads keep their data: --data DIR, else bench-data/
# beside the binary.
data=$(dirname "$bin")/bench-data
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	--data) data=${args[i + 1]:-$data} ;;
	--data=*) data=${args[i]#--data=} ;;
	--out) results=${args[i + 1]:-$results} ;;
	--out=*) results=${args[i]#--out=} ;;
	esac
done

# The closing note of every run: where everything went.
closing() {
	local used="none yet" disk="" abs
	if [ -d "$data" ]; then
		used=$(du -sh "$data" 2>/dev/null | cut -f1)
		disk=$(df -h --output=source,target,avail "$data" 2>/dev/null |
		       awk 'NR == 2 { printf "on %s (%s), %s still free",
				      $1, $2, $3 }')
	fi
	abs=$(cd "$data" 2>/dev/null && pwd || echo "$data")
	echo
	echo "== where the results are =="
	echo "results:        $results/ (<workload>.csv and .png, callgrind.txt)"
	if [ -e "$results/summary.png" ]; then
		echo "summary figure: $results/summary.png (evq vs the best peer, per workload)"
	else
		echo "summary figure: none (gnuplot not installed, or --no-save): see summary.csv"
	fi
	echo "test data:      $abs: $used ${disk:+$disk }(kept for the next run;" \
		"rm -rf it, or make clean, to free it)"
}

# The syscall counter reads a tracepoint id from tracefs. Root can mount
# it where it is not; anyone else gets the reason and strace instead.
if [ "$(id -u)" = 0 ] && [ "${EVQ_BENCH_MOUNT_TRACEFS:-1}" != 0 ] &&
	[ ! -e /sys/kernel/tracing/events/raw_syscalls ] &&
	[ ! -e /sys/kernel/debug/tracing/events/raw_syscalls ] &&
	[ -d /sys/kernel/tracing ]; then
	if mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null; then
		echo "run.sh: mounted tracefs on /sys/kernel/tracing for the" \
			"syscall counter (EVQ_BENCH_MOUNT_TRACEFS=0 not to)"
	fi
fi

mkdir -p "$results"
status=0
"$bin" "$@" || status=$?

if [ "${EVQ_BENCH_CALLGRIND:-1}" = 0 ]; then
	closing
	exit $status
fi
if ! command -v valgrind >/dev/null 2>&1; then
	echo
	echo "callgrind: skipped (valgrind not installed)"
	closing
	exit $status
fi

# ---------------------------------------------------------------------
# Instructions per event: run the pingpong under callgrind with N and 2N
# events; (Ir(2N) - Ir(N)) / N is what one more event costs in user
# space, with start-up, loop creation and exit cancelled out. Kernel time
# is not counted: callgrind sees user-space instructions only.
# ---------------------------------------------------------------------
n=${EVQ_BENCH_CG_EVENTS:-20000}
n2=$((2 * n))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every contender that can run pingpong: readiness (io) or completion
# (ops) model; --list prints "name ok io,ops,timers,files," for those that
# run here.
mapfile -t names < <("$bin" --list "${cg_filter[@]}" |
	awk '/^contenders:/ { c = 1; next }
	     c && $2 == "ok" && $3 ~ /(^|,)(io|ops),/ { print $1 }')

cg_run() { # contender events outfile
	valgrind --tool=callgrind --callgrind-out-file="$3" \
		"$bin" -w pingpong -c "$1" -n "$2" -r 1 --no-warmup --no-save \
		--no-syscalls >/dev/null 2>"$3.log"
}

# Per-function Ir of one callgrind file: "Ir<TAB>function [object]".
cg_functions() {
	callgrind_annotate --inclusive=no --threshold=100 --auto=no "$1" |
		awk '/^-+$/ { sect++; next }
		     sect >= 5 && $1 ~ /^[0-9,]+$/ {
			ir = $1; gsub(",", "", ir)
			sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "")
			print ir "\t" $0 }'
}

# Per-event Ir of each function: (Ir(2N) - Ir(N)) / N, largest first.
cg_per_event() { # fileN file2N
	awk -F'\t' -v n="$n" '
		NR == FNR { a[$2] = $1; next }
		{ d = ($1 - a[$2]) / n; if (d >= 0.5) printf "%8.1f  %s\n", d, $2 }
	' <(cg_functions "$1") <(cg_functions "$2") | sort -rn
}

total_ir() {
	awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

{
	echo
	echo "== callgrind: user-space instructions per pingpong event =="
	echo "(Ir($n2) - Ir($n)) / $n, one run each; \"workload\" is the bench's"
	echo "own callback(s) and the read()+write() they call (readiness"
	echo "contenders; -ops contenders have the loop do the I/O);"
	echo "\"loop\" is the rest: what the event loop costs per event"
	printf '%-13s %12s %12s %9s %9s\n' contender "Ir($n)" "Ir($n2)" \
		instr/ev loop/ev
} | tee "$tmp/report"
echo "contender,events_n,ir_n,ir_2n,instr_per_event,loop_instr_per_event" \
	>"$tmp/csv"

# The valgrind runs, J at a time (each is single-threaded, and its count
# is the same whatever else runs); then the report, in table order.
jobs=${EVQ_BENCH_CG_JOBS:-$(nproc 2>/dev/null || echo 1)}
running=0
for name in "${names[@]}"; do
	for ev in "$n" "$n2"; do
		(cg_run "$name" "$ev" "$tmp/$name.$ev" && touch "$tmp/$name.$ev.ok") &
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait -n || true
			running=$((running - 1))
		fi
	done
done
wait

for name in "${names[@]}"; do
	if [ ! -e "$tmp/$name.$n.ok" ] || [ ! -e "$tmp/$name.$n2.ok" ]; then
		printf '%-13s FAILED under valgrind (see below)\n' "$name" |
			tee -a "$tmp/report"
		tail -n 5 "$tmp/$name.$n.log" "$tmp/$name.$n2.log" >&2 || true
		status=1
		continue
	fi
	a=$(total_ir "$tmp/$name.$n")
	b=$(total_ir "$tmp/$name.$n2")
	cg_per_event "$tmp/$name.$n" "$tmp/$name.$n2" >"$tmp/$name.fn"
	# The workload's share: its callback, and libc's read and write.
	wl=$(awk '$2 ~ /:pp_(cb|read_done|write_done)$/ ||
		  $2 ~ /:(__libc_)?(read|write)$/ {
		s += $1 } END { printf "%.1f", s }' "$tmp/$name.fn")
	awk -v name="$name" -v a="$a" -v b="$b" -v n="$n" -v wl="$wl" 'BEGIN {
		per = (b - a) / n
		printf "%-13s %12d %12d %9.1f %9.1f\n", name, a, b, per, per - wl
	}' | tee -a "$tmp/report"
	awk -v name="$name" -v a="$a" -v b="$b" -v n="$n" -v wl="$wl" 'BEGIN {
		per = (b - a) / n
		printf "%s,%d,%d,%d,%.1f,%.1f\n", name, n, a, b, per, per - wl
	}' >>"$tmp/csv"
done

# Where the instructions go, per function: printed for evq on epoll and
# uring (readiness and ops), kept in results/callgrind.txt for every
# contender.
for name in "${names[@]}"; do
	[ -s "$tmp/$name.fn" ] || continue
	{
		echo
		echo "-- $name: instructions per event by function" \
			"(>= 0.5; inlined code counts in its caller) --"
		cat "$tmp/$name.fn"
	} >"$tmp/$name.section"
	case $name in
	evq-epoll | evq-uring | evq-uring-ops)
		tee -a "$tmp/report" <"$tmp/$name.section" ;;
	*) cat "$tmp/$name.section" >>"$tmp/others" ;;
	esac
done
[ -s "$tmp/others" ] && cat "$tmp/others" >>"$tmp/report"

cp "$tmp/report" "$results/callgrind.txt"
cp "$tmp/csv" "$results/callgrind.csv"
closing
exit $status
