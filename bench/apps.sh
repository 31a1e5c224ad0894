#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# apps.sh [BUILD_DIR] - the "apps" table of issue #12: evq's example
# servers against the programs people would otherwise run, measured by
# clients nobody on this project wrote.
#
#   evq-httpd vs nginx (nginx-light, one worker, access_log off, sendfile
#       on) under `wrk -t1 -c64`, on a 4 KiB and on a 1 MiB file;
#   evq-kv vs redis-server (--save '' --appendonly no) under
#       `redis-benchmark -t set` and `-t get`, with and without -P 16.
#
# evq-kv looks for requests for up to 50 us before its loop sleeps (see
# on_spin in evq-kv.c): its server CPU per request counts that spinning
# too; EVQ_KV_SPIN_US=0 in the environment measures it without.
#
# evq's servers run on the auto backend and on epoll. Each server is
# pinned to one CPU and its client to another (taskset), on 127.0.0.1
# only. Runs are interleaved (run 1 of every server, then run 2, ...), each
# server started fresh for its run and stopped by its PID; the table gives
# the median and min-max of requests per second, and the server's CPU time
# per request (utime + stime from /proc, median) and the client's (from
# bash's `time`), in microseconds: a client near 1 s of CPU per second is
# the bottleneck, and then requests/s does not rank the servers.
# A program that is not installed is reported "missing" and skipped.
#
# Environment: RUNS (3), SECS (wrk seconds per run, 5), KV_N (requests per
# redis-benchmark run, 100000), KV_N_PIPE (with -P 16, 1000000),
# SERVER_CPU (0), CLIENT_CPU (1), APPS ("http kv": the tables to run).
# Every client runs under `timeout`.
set -u

BUILD=${1:-build}
RUNS=${RUNS:-3}
SECS=${SECS:-5}
KV_N=${KV_N:-100000}
KV_N_PIPE=${KV_N_PIPE:-1000000}
APPS=${APPS:-http kv}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
HZ=$(getconf CLK_TCK)

T=$(mktemp -d "${TMPDIR:-/tmp}/evq-apps.XXXXXX")
SRV=
cleanup() {
	if [ -n "$SRV" ]; then
		kill -TERM "$SRV" 2>/dev/null
		sleep 0.2
		kill -KILL "$SRV" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'apps: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }

HTTPD=$BUILD/examples/evq-httpd
KV=$BUILD/examples/evq-kv
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
for p in "$HTTPD" "$KV" "$NGINX" wrk "$REDIS" redis-benchmark taskset; do
	have "$p" || say "missing: $p"
done

# A free TCP port on 127.0.0.1 for the servers that cannot pick one: below
# the kernel's ephemeral range (the clients' own ports come from there),
# and with no socket on it at all, listening or not.
free_port() {
	local lo p
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	lo=${lo:-32768}
	for p in $(shuf -i 10000-$((lo - 1)) -n 50); do
		if command -v ss > /dev/null; then
			[ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ] || continue
		fi
		(exec 3<> "/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	return 1
}

# Wait until something listens on $1; fails after 5 s or if $SRV died.
wait_port() {
	for _ in $(seq 100); do
		(exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$SRV" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# CPU ticks (user + system) of a process and its children (nginx's
# worker), from /proc.
cpu_ticks() {
	local pids="$1 $(cat "/proc/$1/task/$1/children" 2>/dev/null)" p t=0
	for p in $pids; do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo $t
}

# start_server NAME: start it pinned to SERVER_CPU; sets SRV and PORT.
start_server() {
	local name=$1
	: > "$T/srv.out"
	case $name in
	evq-httpd:* | evq-kv:*)
		local bin=$HTTPD arg=$T/www
		[ "${name%%:*}" = evq-kv ] && bin=$KV arg=
		EVQ_BACKEND=${name#*:} taskset -c "$SERVER_CPU" "$bin" $arg 0 \
			> "$T/srv.out" 2> "$T/srv.err" &
		SRV=$!
		for _ in $(seq 100); do
			PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$T/srv.out")
			[ -n "$PORT" ] && break
			kill -0 "$SRV" 2>/dev/null || break
			sleep 0.05
		done ;;
	nginx)
		PORT=$(free_port) || return 1
		mkdir -p "$T/nginx"
		cat > "$T/nginx/nginx.conf" <<-EOF
		# A master and one worker, in the foreground: the PID started
		# is the master's; the worker inherits its CPU (taskset).
		daemon off;
		master_process on;
		worker_processes 1;
		pid $T/nginx/nginx.pid;
		error_log $T/nginx/error.log;
		events { worker_connections 1024; }
		http {
			access_log off;
			sendfile on;
			keepalive_requests 1000000;
			client_body_temp_path $T/nginx/body;
			proxy_temp_path $T/nginx/proxy;
			fastcgi_temp_path $T/nginx/fastcgi;
			uwsgi_temp_path $T/nginx/uwsgi;
			scgi_temp_path $T/nginx/scgi;
			types { application/octet-stream bin; }
			server {
				listen 127.0.0.1:$PORT;
				root $T/www;
			}
		}
		EOF
		taskset -c "$SERVER_CPU" "$NGINX" -c "$T/nginx/nginx.conf" \
			-p "$T/nginx" > "$T/srv.out" 2> "$T/srv.err" &
		SRV=$! ;;
	redis-server)
		PORT=$(free_port) || return 1
		taskset -c "$SERVER_CPU" "$REDIS" --port "$PORT" --bind 127.0.0.1 \
			--save '' --appendonly no --daemonize no --dir "$T" \
			--logfile "$T/redis.log" > "$T/srv.out" 2> "$T/srv.err" &
		SRV=$! ;;
	esac
	[ -n "${PORT:-}" ] && wait_port "$PORT" && return 0
	say "$name did not start: $(cat "$T/srv.err" 2>/dev/null)"
	stop_server
	return 1
}

stop_server() {
	[ -n "$SRV" ] || return 0
	kill -TERM "$SRV" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null
	SRV=
	PORT=
}

# The client's CPU time (user + sys, s) of the command run, from bash's
# `time` (the children it waited for: timeout's child, the client);
# appends "CLIENT_CPU <s>" to its output.
timed() {
	local TIMEFORMAT='CLIENT_CPU %3U %3S'
	{ time "$@" 2>&1; } 2>&1
}

# measure WORKLOAD: run its client against $PORT; prints "rps us_per_req
# client_us_per_req".
measure() {
	local w=$1 c0 c1 out reqs rps ccpu
	c0=$(cpu_ticks "$SRV")
	case $w in
	http-4k | http-1m)
		out=$(timed timeout $((SECS + 30)) taskset -c "$CLIENT_CPU" wrk \
			-t1 -c64 -d"${SECS}s" \
			"http://127.0.0.1:$PORT/${w#http-}.bin") || return 1
		# Error answers are not requests served: the run is void.
		echo "$out" | grep -q "Non-2xx" && { say "$w: $(echo "$out" | grep "Non-2xx")"; return 1; }
		echo "$out" | grep -q "Socket errors" && say "$w: $(echo "$out" | grep "Socket errors")"
		reqs=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
		rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p') ;;
	kv-*)
		local t=${w#kv-} p=
		t=${t%-p16}
		reqs=$KV_N
		case $w in *-p16) p="-P 16"; reqs=$KV_N_PIPE ;; esac
		out=$(timed timeout 300 taskset -c "$CLIENT_CPU" \
			redis-benchmark -p "$PORT" -t "$t" -n "$reqs" -c 50 $p \
			-q) || return 1
		rps=$(echo "$out" | tr '\r' '\n' | sed -n 's/^[A-Z]*: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1) ;;
	esac
	c1=$(cpu_ticks "$SRV")
	ccpu=$(echo "$out" | awk '$1 == "CLIENT_CPU" { print $2 + $3 }')
	[ -n "$reqs" ] && [ -n "$rps" ] && [ "$reqs" -gt 0 ] || return 1
	awk -v r="$rps" -v d=$((c1 - c0)) -v n="$reqs" -v hz="$HZ" \
		-v cc="${ccpu:-0}" \
		'BEGIN { printf "%.0f %.2f %.2f\n", r, d / hz * 1e6 / n,
			 cc * 1e6 / n }'
}

# The files served; readable by nginx's worker, which runs as nobody when
# the bench runs as root.
mkdir -p "$T/www"
head -c 4096 /dev/urandom > "$T/www/4k.bin"
head -c 1048576 /dev/urandom > "$T/www/1m.bin"
chmod 755 "$T" "$T/www"
chmod 644 "$T/www/"*.bin

HTTP_SERVERS=("evq-httpd:auto" "evq-httpd:epoll" "nginx")
KV_SERVERS=("evq-kv:auto" "evq-kv:epoll" "redis-server")
HTTP_WORK=(http-4k http-1m)
KV_WORK=(kv-set kv-get kv-set-p16 kv-get-p16)

usable() {
	case $1 in
	evq-httpd:*) have "$HTTPD" && have wrk ;;
	evq-kv:*) have "$KV" && have redis-benchmark ;;
	nginx) have "$NGINX" && have wrk ;;
	redis-server) have "$REDIS" && have redis-benchmark ;;
	esac
}

declare -A RPS CPU CCPU
for run in $(seq "$RUNS"); do
	say "run $run of $RUNS"
	for group in $APPS; do
		if [ $group = http ]; then
			servers=("${HTTP_SERVERS[@]}"); work=("${HTTP_WORK[@]}")
		else
			servers=("${KV_SERVERS[@]}"); work=("${KV_WORK[@]}")
		fi
		for s in "${servers[@]}"; do
			usable "$s" || continue
			# A port taken between the choice and the bind: again.
			start_server "$s" || start_server "$s" || continue
			# A short warm-up: page cache, connections, allocator.
			[ $group = http ] &&
				timeout 10 wrk -t1 -c8 -d1s "http://127.0.0.1:$PORT/4k.bin" > /dev/null 2>&1
			for w in "${work[@]}"; do
				if r=$(measure "$w"); then
					read -r a b cc <<< "$r"
					RPS[$s,$w]+="$a "
					CPU[$s,$w]+="$b "
					CCPU[$s,$w]+="$cc "
				else
					say "$s $w: the client failed"
				fi
			done
			stop_server
		done
	done
done

# median of a list of numbers; min-max.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) print lo "-" hi }'; }

cell() {	# cell SERVER WORKLOAD
	local v=${RPS[$1,$2]:-}
	if ! usable "$1"; then
		printf '%-44s' "missing"
	elif [ -z "$v" ]; then
		printf '%-44s' "failed"
	else
		printf '%-44s' "$(echo "$v" | median) ($(echo "$v" | range)) \
$(echo "${CPU[$1,$2]}" | median)/$(echo "${CCPU[$1,$2]}" | median)us"
	fi
}

table() {	# table TITLE SERVERS... -- WORKLOADS...
	local title=$1 s w
	shift
	local -a servers=() work=()
	while [ "$1" != -- ]; do servers+=("$1"); shift; done
	shift
	work=("$@")
	printf '\n%s\n%-12s' "$title" "workload"
	for s in "${servers[@]}"; do printf '%-44s' "$s"; done
	printf '\n'
	for w in "${work[@]}"; do
		printf '%-12s' "$w"
		for s in "${servers[@]}"; do cell "$s" "$w"; done
		printf '\n'
	done
}

printf 'apps: requests/s, median (min-max) of %s runs; %s\n' "$RUNS" \
	"server/client CPU per request (medians, us)"
printf 'server on CPU %s, client on CPU %s; wrk -t1 -c64 -d%ss; redis-benchmark -c 50, -n %s (-P 16: -n %s)\n' \
	"$SERVER_CPU" "$CLIENT_CPU" "$SECS" "$KV_N" "$KV_N_PIPE"
case " $APPS " in *" http "*)
	table "http (wrk)" "${HTTP_SERVERS[@]}" -- "${HTTP_WORK[@]}" ;; esac
case " $APPS " in *" kv "*)
	table "kv (redis-benchmark)" "${KV_SERVERS[@]}" -- "${KV_WORK[@]}" ;; esac
