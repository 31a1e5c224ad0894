#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run_example.sh NAME BINARY - run one of the small examples on the backend
# named by EVQ_BACKEND and compare what it prints with what it must print:
#  - timer_and_pipe: "backend: <EVQ_BACKEND>", then "tick K at T ms" for
#    K = 1..5 with 10K <= T < 10K + 50 (a 10 ms repeating timer: never
#    early, and late by less than the loop's slack under a sanitizer);
#  - cross_thread: the three results and "done", exactly;
#  - cross_loop: six jobs' answers from three worker loops, and "done",
#    exactly;
#  - file_size: the size and checksum of a file the script writes (the
#    numbers 1..20000, one a line), exactly.
# Exit 0 when the output matches, 1 when not, 77 when the backend is not
# available here (and not listed in EVQ_REQUIRE_BACKENDS).
set -u
NAME=$1
BIN=$2
BACKEND=${EVQ_BACKEND:-auto}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $NAME on $BACKEND: $*"
	echo "--- output:"; cat "$T/out"
	echo "--- stderr:"; cat "$T/err"
	exit 1
}

args=()
if [ "$NAME" = file_size ]; then
	seq 1 20000 > "$T/in"
	args=("$T/in")
fi
"$BIN" "${args[@]}" > "$T/out" 2> "$T/err"
rc=$?
if [ $rc -ne 0 ] && grep -Eq "^evq_loop_new: (Operation not supported|\
Function not implemented|Operation not permitted)" "$T/err"; then
	case " ${EVQ_REQUIRE_BACKENDS:-} " in
	*[\ ,]"$BACKEND"[\ ,]*)
		fail "backend required (EVQ_REQUIRE_BACKENDS) but unavailable";;
	esac
	echo "skip: backend $BACKEND unavailable: $(cat "$T/err")"
	exit 77
fi
[ $rc -eq 0 ] || fail "exit status $rc"

case $NAME in
timer_and_pipe)
	want=$BACKEND
	[ "$want" = auto ] && want='(uring|epoll|aio|poll)'
	head -1 "$T/out" | grep -Eqx "backend: $want" ||
		fail "first line is not \"backend: $BACKEND\""
	[ "$(wc -l < "$T/out")" -eq 6 ] || fail "not 6 lines"
	tail -n +2 "$T/out" | awk '
		$1 != "tick" || $2 != NR || $3 != "at" || $5 != "ms" { bad = 1 }
		$4 < 10 * NR || $4 >= 10 * NR + 50 { bad = 1 }
		END { exit bad }' || fail "ticks not 1..5 at 10 ms steps"
	;;
cross_thread)
	printf '%s\n' "result 1: 2262 primes" "result 2: 4203 primes" \
		"result 3: 6057 primes" "done" > "$T/want"
	cmp -s "$T/want" "$T/out" ||
		fail "output differs from: $(cat "$T/want")"
	;;
cross_loop)
	for i in 1 2 3 4 5 6; do
		set -- 0 1229 2262 3245 4203 5133 6057
		shift $i
		echo "job $i: $1 primes below ${i}0000 (worker $(( (i - 1) % 3 + 1 )))"
	done > "$T/want"
	echo done >> "$T/want"
	cmp -s "$T/want" "$T/out" ||
		fail "output differs from: $(cat "$T/want")"
	;;
file_size)
	echo "$T/in: 108894 bytes, checksum ecbb0518" > "$T/want"
	cmp -s "$T/want" "$T/out" ||
		fail "output differs from: $(cat "$T/want")"
	;;
*)
	fail "no expected output for this example"
	;;
esac
echo "ok: $NAME on $BACKEND"
exit 0
