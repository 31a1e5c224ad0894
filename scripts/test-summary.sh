#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test-summary.sh - the closing lines of `make test`: one line per stage
# (from the ctest and install-check logs the Makefile keeps) and a total.
# Run from the repository root, after every stage has passed.

set -euo pipefail

passed=0 failed=0 skipped=0

printf '\n== make test: summary ==\n'
for stage in build:plain build-asan:asan+ubsan build-tsan:tsan; do
	dir=${stage%%:*} name=${stage#*:}
	log=$dir/ctest.log
	[ -f "$log" ] || { printf '%-12s no log (%s)\n' "$name:" "$log"; failed=$((failed + 1)); continue; }
	line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
	if [ -z "$line" ]; then
		printf '%-12s no ctest summary in %s\n' "$name:" "$log"
		failed=$((failed + 1))
		continue
	fi
	total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
	nfail=$(sed -E 's/.*, ([0-9]+) tests? failed.*/\1/' <<<"$line")
	nskip=$(grep -cE '^[[:space:]]*[0-9]+ - .*\((Skipped|Disabled)\)[[:space:]]*$' "$log" || true)
	printf '%-12s %s (%d skipped)\n' "$name:" "$line" "$nskip"
	passed=$((passed + total - nfail - nskip))
	failed=$((failed + nfail))
	skipped=$((skipped + nskip))
done

log=build/install-check.log
line=$(grep -E '^install-check: [0-9]+ checks passed$' "$log" 2>/dev/null || true)
if [ -n "$line" ]; then
	n=$(sed -E 's/.*: ([0-9]+) checks.*/\1/' <<<"$line")
	nskip=$(grep -c '^install-check: skipped:' "$log" || true)
	printf '%-12s %d checks passed (%d skipped)\n' "install:" "$n" "$nskip"
	grep '^install-check: skipped:' "$log" | sed 's/^install-check: /             /' || true
	passed=$((passed + n))
	skipped=$((skipped + nskip))
else
	printf '%-12s no result in %s\n' "install:" "$log"
	failed=$((failed + 1))
fi

printf 'summary: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
