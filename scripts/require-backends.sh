#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Print the evq backends this kernel offers, for EVQ_REQUIRE_BACKENDS
# (tests/helpers.h): with it set, a test whose backend is listed fails
# instead of skipping when evq cannot make a loop of it, so a backend
# that breaks cannot turn its tests into "skipped" in a green run.
#   export EVQ_REQUIRE_BACKENDS="$(scripts/require-backends.sh)"
# The probe asks the kernel directly (io_uring_setup, io_setup,
# epoll_create1), never evq: a broken backend in evq must not be able to
# talk the check out of requiring it.
set -uo pipefail
cc=${CC:-cc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/probe.c" <<'C'
#define _GNU_SOURCE
#include <linux/aio_abi.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
	struct io_uring_params p;
	aio_context_t ctx = 0;
	int fd;

	memset(&p, 0, sizeof(p));
	fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (fd >= 0) {
		printf("uring ");
		close(fd);
	}
	if (syscall(__NR_io_setup, 4, &ctx) == 0) {
		printf("aio ");
		syscall(__NR_io_destroy, ctx);
	}
	fd = epoll_create1(0);
	if (fd >= 0) {
		printf("epoll ");
		close(fd);
	}
	printf("poll\n");
	return 0;
}
C
if "$cc" -o "$dir/probe" "$dir/probe.c" 2>/dev/null; then
	"$dir/probe"
else
	echo "epoll poll"
fi
