/* SPDX-License-Identifier: MIT */
/*
 * soak_client - load for the soak (issue 13, item 3; tests/soak/soak.sh).
 *
 *   soak_client PORT SECONDS [THREADS] [SEED]
 *
 * THREADS workers (default 8), loopback only, each repeating for SECONDS:
 * connect, then one of
 *  - echo (60%): send a random-size (1 B .. 256 KiB) block of seeded
 *    random data, half-close, read everything back until EOF, and verify
 *    every byte and the length (the checksum is the data itself);
 *  - reset (15%): send part of a block, then close with SO_LINGER 0 (RST);
 *  - vanish (15%): send a block and close without reading;
 *  - idle (10%): connect and close at once.
 * Each socket has a 10 s receive/send timeout, so a lost byte fails the
 * run instead of hanging it. Prints totals; exits 1 on any mismatch, a
 * short echo, or a connect/IO error on an echo exchange.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAXBLK (256 * 1024)

static int port, seconds;
static uint64_t seed0;
static long long n_echo, n_reset, n_vanish, n_idle, n_bytes, n_bad;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send while reading back, so neither side's buffers fill up. */
static int echo(int fd, const unsigned char *out, size_t len,
		unsigned char *in)
{
	size_t sent = 0, got = 0;
	ssize_t r;

	while (sent < len) {
		size_t chunk = len - sent < 16384 ? len - sent : 16384;

		r = send(fd, out + sent, chunk, MSG_NOSIGNAL);
		if (r <= 0)
			return -1;
		sent += (size_t)r;
		while (got + 65536 < sent) {
			r = recv(fd, in + got, len - got, 0);
			if (r <= 0)
				return -2;
			got += (size_t)r;
		}
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		r = recv(fd, in + got, got < len ? len - got : 1, 0);
		if (r < 0)
			return -3;
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > len)
			return -4;
	}
	if (got != len)
		return -5;
	return memcmp(in, out, len) == 0 ? 0 : -6;
}

static void *worker(void *arg)
{
	uint64_t s = seed0 + (uintptr_t)arg * 7919 + 1;
	unsigned char *out = malloc(MAXBLK), *in = malloc(MAXBLK);
	double end = now() + seconds;
	long long e = 0, rs = 0, v = 0, id = 0, b = 0, bad = 0;

	while (now() < end) {
		unsigned kind = (unsigned)(xs(&s) % 100);
		size_t len = 1 + xs(&s) % (xs(&s) % 4 ? 8192 : MAXBLK);
		size_t i;
		int fd = dial(), r;

		if (fd < 0) {
			bad++;
			fprintf(stderr, "soak_client: connect: %s\n",
				strerror(errno));
			usleep(10000);
			continue;
		}
		for (i = 0; i < len; i += 8) {
			uint64_t x = xs(&s);

			memcpy(out + i, &x, len - i < 8 ? len - i : 8);
		}
		if (kind < 60) {
			r = echo(fd, out, len, in);
			if (r != 0) {
				bad++;
				fprintf(stderr, "soak_client: echo of %zu "
					"bytes failed (%d, errno %s)\n", len,
					r, strerror(errno));
			} else {
				e++;
				b += (long long)len;
			}
		} else if (kind < 75) {
			struct linger l = { 1, 0 };

			send(fd, out, len / 2 + 1, MSG_NOSIGNAL);
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			rs++;
		} else if (kind < 90) {
			send(fd, out, len, MSG_NOSIGNAL);
			v++;
		} else {
			id++;
		}
		close(fd);
	}
	pthread_mutex_lock(&lock);
	n_echo += e;
	n_reset += rs;
	n_vanish += v;
	n_idle += id;
	n_bytes += b;
	n_bad += bad;
	pthread_mutex_unlock(&lock);
	free(out);
	free(in);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	int n = 8, i;

	if (argc < 3) {
		fprintf(stderr, "usage: soak_client PORT SECONDS [THREADS] "
			"[SEED]\n");
		return 2;
	}
	port = atoi(argv[1]);
	seconds = atoi(argv[2]);
	if (argc > 3)
		n = atoi(argv[3]);
	if (n < 1 || n > 64)
		n = 8;
	seed0 = argc > 4 ? strtoull(argv[4], NULL, 0) : (uint64_t)time(NULL);
	printf("soak_client: %d clients, %d s, seed %#llx\n", n, seconds,
	       (unsigned long long)seed0);
	for (i = 0; i < n; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	printf("soak_client: %lld echoes verified (%lld bytes), %lld resets, "
	       "%lld vanished, %lld idle, %lld failures\n", n_echo, n_bytes,
	       n_reset, n_vanish, n_idle, n_bad);
	return n_bad || !n_echo ? 1 : 0;
}
