/* SPDX-License-Identifier: MIT */
/*
 * evq-kv - an in-memory key-value server on 127.0.0.1 that speaks the
 * Redis protocol (RESP2), so redis-cli and redis-benchmark can talk to it.
 * Written with evq's completion API: accept, recv, send and close are ops;
 * keys expire through one evq timer.
 *
 *   evq-kv [PORT]     (default 6380; 0 picks a free port)
 *
 * It prints "listening on 127.0.0.1:PORT", and exits cleanly, everything
 * freed, on SIGINT or SIGTERM. EVQ_KV_SPIN_US (default 50, 0: off) is the
 * longest the loop looks for more requests before it sleeps (on_spin).
 *
 * Commands: PING ECHO SET (EX PX NX XX KEEPTTL) GET DEL EXISTS INCR DECR
 * MGET MSET EXPIRE TTL PTTL DBSIZE FLUSHALL FLUSHDB SELECT COMMAND CONFIG
 * QUIT. Values are strings only (so WRONGTYPE never happens; INCR on a
 * value that is not a number is the type error here, as in Redis).
 *
 * What it teaches:
 *  - Pipelining for free: a connection alternates between one recv and
 *    one send. After a recv it runs every whole command in its buffer and
 *    queues every reply, then sends them all at once; a command cut in two
 *    waits in the buffer for the next recv. The one-op-at-a-time rhythm is
 *    also the backpressure: a client that does not read its replies stops
 *    being read.
 *  - Bounded input: a command's header lines are at most INLINE_MAX
 *    bytes, an argument at most MAX_BULK, a whole command at most
 *    MAX_QUERY; the buffer grows only as a command needs it and shrinks
 *    back after. Protocol errors are answered with -ERR and close the
 *    connection, as Redis does; command errors keep it open.
 *  - Expiry with one timer: keys with a deadline sit in a min-heap, and
 *    one evq timer is armed for the soonest. When it fires it deletes what
 *    is due (at most EXPIRE_BATCH keys, then it yields to I/O) and re-arms
 *    itself. A timer per key would work too (evq's timers are a heap as
 *    well), but would cost a struct evq_timer per key, and reads still
 *    have to check the deadline themselves (a GET may run in the same
 *    iteration as the expiry, before the timer's callback): keeping the
 *    heap here keeps both checks in one place.
 *  - When not to sleep: a server faster than its clients runs out of work
 *    every few microseconds, and each sleep costs the client a wakeup. An
 *    idle hook makes the loop look again for a while first, a while that
 *    adapts to how soon requests come (on_spin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evq.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_INIT (16 * 1024)	/* a connection's input buffer, at first */
#define OUT_INIT (16 * 1024)
#define INLINE_MAX (64 * 1024)	/* an inline command, a "*N" or "$N" line */
#define MAX_ARGS (1024 * 1024)	/* as Redis: "*N" with N above is refused */
#define MAX_BULK (16 * 1024 * 1024)	/* one argument */
#define MAX_QUERY (32 * 1024 * 1024)	/* one whole command */
#define OUT_SOFT (1024 * 1024)	/* stop running commands, send first */
#define EXPIRE_BATCH 1000	/* keys one timer callback deletes */
#define ACCEPT_RETRY_NS 100000000ull
#define SPIN_MAX_NS 50000ull	/* look for more work before sleeping */
#define SPIN_MIN_NS 1000ull

/* ------------------------------------------------------------------------
 * The store: a chained hash table of strings, and a min-heap of the keys
 * that have a deadline.
 * ------------------------------------------------------------------------ */

struct entry {
	struct entry *next;	/* in its bucket */
	uint64_t hash;
	uint64_t expire;	/* CLOCK_MONOTONIC ns (evq_now), 0: never */
	size_t heap_pos;	/* 1 + index in the heap, 0: not in it */
	char *val;
	size_t vlen, klen;
	char key[];
};

struct store {
	struct entry **buckets;
	size_t mask;		/* buckets - 1, a power of two minus one */
	size_t count;
	uint64_t seed;
	struct entry **heap;	/* heap[0] expires first */
	size_t heap_len, heap_cap;
};

/* Seeded FNV-1a with a final mix. The random seed keeps the bucket of a
 * key unpredictable between runs; it is not a defence against a
 * determined hash-flooding client (Redis uses SipHash for that). */
static uint64_t hash_key(const struct store *st, const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ st->seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static int store_init(struct store *st)
{
	if (getrandom(&st->seed, sizeof(st->seed), 0) != sizeof(st->seed))
		st->seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
	st->mask = 1023;
	st->buckets = calloc(st->mask + 1, sizeof(*st->buckets));
	return st->buckets ? 0 : -ENOMEM;
}

static void heap_set(struct store *st, size_t i, struct entry *e)
{
	st->heap[i] = e;
	e->heap_pos = i + 1;
}

static void heap_up(struct store *st, size_t i)
{
	struct entry *e = st->heap[i];

	while (i > 0 && st->heap[(i - 1) / 2]->expire > e->expire) {
		heap_set(st, i, st->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(st, i, e);
}

static void heap_down(struct store *st, size_t i)
{
	struct entry *e = st->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= st->heap_len)
			break;
		if (c + 1 < st->heap_len &&
		    st->heap[c + 1]->expire < st->heap[c]->expire)
			c++;
		if (st->heap[c]->expire >= e->expire)
			break;
		heap_set(st, i, st->heap[c]);
		i = c;
	}
	heap_set(st, i, e);
}

static void heap_remove(struct store *st, struct entry *e)
{
	size_t i = e->heap_pos - 1;
	struct entry *last = st->heap[--st->heap_len];

	e->heap_pos = 0;
	if (last == e)
		return;
	heap_set(st, i, last);
	heap_up(st, i);
	heap_down(st, last->heap_pos - 1);
}

/* Give e the deadline `expire` (0: none), keeping the heap in order. */
static int set_expire(struct store *st, struct entry *e, uint64_t expire)
{
	if (!expire) {
		if (e->heap_pos)
			heap_remove(st, e);
		e->expire = 0;
		return 0;
	}
	if (!e->heap_pos) {
		if (st->heap_len == st->heap_cap) {
			size_t cap = st->heap_cap ? 2 * st->heap_cap : 64;
			struct entry **h = realloc(st->heap, cap * sizeof(*h));

			if (!h)
				return -ENOMEM;
			st->heap = h;
			st->heap_cap = cap;
		}
		e->expire = expire;
		heap_set(st, st->heap_len++, e);
		heap_up(st, st->heap_len - 1);
		return 0;
	}
	e->expire = expire;
	heap_up(st, e->heap_pos - 1);
	heap_down(st, e->heap_pos - 1);
	return 0;
}

static void entry_free(struct store *st, struct entry *e)
{
	struct entry **pp = &st->buckets[e->hash & st->mask];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	if (e->heap_pos)
		heap_remove(st, e);
	st->count--;
	free(e->val);
	free(e);
}

/* The live entry of a key, or NULL. A key past its deadline is deleted
 * here, even if the expiry timer has not run yet. */
static struct entry *lookup(struct store *st, uint64_t now, const char *k,
			    size_t klen)
{
	uint64_t h = hash_key(st, k, klen);
	struct entry *e;

	for (e = st->buckets[h & st->mask]; e; e = e->next) {
		if (e->hash == h && e->klen == klen &&
		    memcmp(e->key, k, klen) == 0) {
			if (e->expire && e->expire <= now) {
				entry_free(st, e);
				return NULL;
			}
			return e;
		}
	}
	return NULL;
}

/* Double the table once it holds more keys than buckets. All at once:
 * Redis rehashes a bit at a time to keep every command short. */
static void grow(struct store *st)
{
	size_t n = (st->mask + 1) * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i <= st->mask; i++) {
		struct entry *e = st->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(st->buckets);
	st->buckets = b;
	st->mask = n - 1;
}

/* Set key to a copy of the value; the entry is made if need be. Its
 * deadline is left alone (the caller decides). NULL when out of memory. */
static struct entry *store_set(struct store *st, uint64_t now, const char *k,
			       size_t klen, const char *v, size_t vlen)
{
	struct entry *e = lookup(st, now, k, klen);
	char *val = malloc(vlen ? vlen : 1);

	if (!val)
		return NULL;
	memcpy(val, v, vlen);
	if (!e) {
		e = malloc(sizeof(*e) + klen);
		if (!e) {
			free(val);
			return NULL;
		}
		memset(e, 0, sizeof(*e));
		e->hash = hash_key(st, k, klen);
		e->klen = klen;
		memcpy(e->key, k, klen);
		if (st->count >= st->mask + 1)
			grow(st);
		e->next = st->buckets[e->hash & st->mask];
		st->buckets[e->hash & st->mask] = e;
		st->count++;
	}
	free(e->val);
	e->val = val;
	e->vlen = vlen;
	return e;
}

static void store_clear(struct store *st)
{
	for (size_t i = 0; i <= st->mask; i++) {
		struct entry *e = st->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e->val);
			free(e);
		}
		st->buckets[i] = NULL;
	}
	st->count = 0;
	st->heap_len = 0;
}

/* ------------------------------------------------------------------------
 * The server and its connections
 * ------------------------------------------------------------------------ */

struct arg {
	const char *p;
	size_t len;
};

struct server {
	struct evq_loop *loop;
	int listen_fd;
	struct evq_op accept, close_listener;
	struct evq_timer accept_retry, expiry;
	uint64_t expiry_at;	/* when `expiry` is armed for, 0: not */
	struct evq_signal sigint, sigterm;
	bool accepting, stopping;
	struct store st;
	struct arg *argv;	/* the command being run: into conn->in */
	size_t argv_cap;
	struct conn *conns;
	struct evq_hook spin;	/* idle hook: look again before sleeping */
	uint64_t spin_since;	/* first look that found nothing, 0: none */
	uint64_t slept_at;	/* when the last spin gave up, 0: it did not */
	uint64_t spin_ns;	/* how long to look, now */
	uint64_t spin_max;	/* the longest window; 0: never spin */
};

struct conn {
	struct server *srv;
	int fd;			/* -1 once closed */
	struct evq_op op;	/* the one op in flight: recv or send */
	struct evq_op close;
	bool busy;		/* op in flight */
	bool want_close;	/* close once the op in flight ended */
	bool close_sent;
	bool quit;		/* QUIT, a protocol error: close after reply */
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_cap, out_sent;
	bool oom;		/* a reply could not be queued */
	struct conn *next, *prev;
};

static void accept_arm(struct server *s);
static void conn_close(struct conn *c);

/* Re-arm the expiry timer for the soonest deadline, if that changed. */
static void expiry_arm(struct server *s);

static void on_expiry(struct evq_loop *loop, struct evq_timer *t)
{
	struct server *s = t->data;
	struct store *st = &s->st;
	uint64_t now = evq_now(loop);
	int n = 0;

	s->expiry_at = 0;
	while (st->heap_len && st->heap[0]->expire <= now &&
	       n++ < EXPIRE_BATCH)
		entry_free(st, st->heap[0]);
	expiry_arm(s);
}

static void expiry_arm(struct server *s)
{
	struct store *st = &s->st;
	uint64_t at, now;

	if (s->stopping || !st->heap_len) {
		evq_timer_stop(&s->expiry);
		s->expiry_at = 0;
		return;
	}
	at = st->heap[0]->expire;
	if (at == s->expiry_at)
		return;
	now = evq_now(s->loop);
	s->expiry_at = at;
	evq_timer_start(s->loop, &s->expiry, at > now ? at - now : 0, 0,
			on_expiry);
}

/* ------------------------------------------------------------------------
 * Replies: appended to c->out, sent once the batch of commands is run.
 * ------------------------------------------------------------------------ */

static void add(struct conn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : OUT_INIT;
		char *out;

		while (cap < c->out_len + n)
			cap *= 2;
		out = realloc(c->out, cap);
		if (!out) {
			c->oom = true;	/* the connection is closed */
			return;
		}
		c->out = out;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void add_str(struct conn *c, const char *s)
{
	add(c, s, strlen(s));
}

static void add_int(struct conn *c, long long v)
{
	char buf[32];

	add(c, buf, (size_t)snprintf(buf, sizeof(buf), ":%lld\r\n", v));
}

static void add_bulk(struct conn *c, const char *p, size_t n)
{
	char buf[32];

	add(c, buf, (size_t)snprintf(buf, sizeof(buf), "$%zu\r\n", n));
	add(c, p, n);
	add(c, "\r\n", 2);
}

static void add_array(struct conn *c, size_t n)
{
	char buf[32];

	add(c, buf, (size_t)snprintf(buf, sizeof(buf), "*%zu\r\n", n));
}

/* An error reply: "-" and the message, with CR and LF made spaces (an
 * argument quoted in the message must not end the line). */
static void add_error(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add_error(struct conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + 1, sizeof(buf) - 3, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 4)
		n = (int)sizeof(buf) - 4;
	buf[0] = '-';
	for (int i = 1; i <= n; i++)
		if (buf[i] == '\r' || buf[i] == '\n')
			buf[i] = ' ';
	memcpy(buf + 1 + n, "\r\n", 2);
	add(c, buf, (size_t)n + 3);
}

/* Redis's words for the errors several commands share. */
#define ERR_INT "ERR value is not an integer or out of range"
#define ERR_SYNTAX "ERR syntax error"
#define ERR_OOM "OOM command not allowed when out of memory"
#define ERR_ARITY "ERR wrong number of arguments for '%s' command"
#define ERR_EXPIRE "ERR invalid expire time in '%s' command"
#define ERR_PROTO "ERR Protocol error: "


/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

/* Redis's rule for integers: optional '-', digits, no leading zero, no
 * '+', no space, fits in 64 bits. */
static bool to_ll(const struct arg *a, long long *v)
{
	const char *p = a->p, *end = a->p + a->len;
	bool neg = false;
	unsigned long long u = 0;

	if (a->len == 0 || a->len > 20)
		return false;
	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p == end || (*p == '0' && end - p > 1) || (neg && *p == '0'))
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || u > (ULLONG_MAX - 9) / 10)
			return false;
		u = u * 10 + (unsigned)(*p - '0');
	}
	if (neg ? u > (unsigned long long)LLONG_MAX + 1 : u > LLONG_MAX)
		return false;
	*v = neg ? (long long)(0 - u) : (long long)u;
	return true;
}

static bool is(const struct arg *a, const char *word)
{
	return a->len == strlen(word) && strncasecmp(a->p, word, a->len) == 0;
}

static uint64_t now_ns(struct conn *c)
{
	return evq_now(c->srv->loop);
}

/* A relative time in ms, from now, as a deadline; 0 if it is too far. */
static uint64_t deadline_ms(struct conn *c, long long ms)
{
	if (ms > (long long)((UINT64_MAX / 2 - now_ns(c)) / 1000000))
		return 0;
	return now_ns(c) + (uint64_t)ms * 1000000;
}

static void cmd_ping(struct conn *c, struct arg *av, size_t ac)
{
	if (ac == 2)
		add_bulk(c, av[1].p, av[1].len);
	else
		add_str(c, "+PONG\r\n");
}

static void cmd_echo(struct conn *c, struct arg *av, size_t ac)
{
	(void)ac;
	add_bulk(c, av[1].p, av[1].len);
}

static void cmd_get(struct conn *c, struct arg *av, size_t ac)
{
	struct entry *e = lookup(&c->srv->st, now_ns(c), av[1].p, av[1].len);

	(void)ac;
	if (e)
		add_bulk(c, e->val, e->vlen);
	else
		add_str(c, "$-1\r\n");
}

/* SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL] */
static void cmd_set(struct conn *c, struct arg *av, size_t ac)
{
	struct store *st = &c->srv->st;
	bool nx = false, xx = false, keepttl = false, exists;
	long long t = 0, unit = 0;
	uint64_t expire = 0;
	struct entry *e;

	for (size_t i = 3; i < ac; i++) {
		if (is(&av[i], "NX") && !xx) {
			nx = true;
		} else if (is(&av[i], "XX") && !nx) {
			xx = true;
		} else if (is(&av[i], "KEEPTTL") && !unit) {
			keepttl = true;
		} else if ((is(&av[i], "EX") || is(&av[i], "PX")) && !unit &&
			   !keepttl && i + 1 < ac) {
			unit = is(&av[i], "EX") ? 1000 : 1;
			if (!to_ll(&av[++i], &t)) {
				add_error(c, ERR_INT);
				return;
			}
		} else {
			add_error(c, ERR_SYNTAX);
			return;
		}
	}
	if (unit) {
		if (t <= 0 || t > LLONG_MAX / unit ||
		    !(expire = deadline_ms(c, t * unit))) {
			add_error(c, ERR_EXPIRE, "set");
			return;
		}
	}
	exists = lookup(st, now_ns(c), av[1].p, av[1].len) != NULL;
	if ((nx && exists) || (xx && !exists)) {
		add_str(c, "$-1\r\n");
		return;
	}
	e = store_set(st, now_ns(c), av[1].p, av[1].len, av[2].p, av[2].len);
	if (!e || (!keepttl && set_expire(st, e, expire) < 0)) {
		add_error(c, ERR_OOM);
		return;
	}
	expiry_arm(c->srv);
	add_str(c, "+OK\r\n");
}

static void cmd_del(struct conn *c, struct arg *av, size_t ac)
{
	struct store *st = &c->srv->st;
	long long n = 0;

	for (size_t i = 1; i < ac; i++) {
		struct entry *e = lookup(st, now_ns(c), av[i].p, av[i].len);

		if (e) {
			entry_free(st, e);
			n++;
		}
	}
	expiry_arm(c->srv);
	add_int(c, n);
}

static void cmd_exists(struct conn *c, struct arg *av, size_t ac)
{
	long long n = 0;

	for (size_t i = 1; i < ac; i++)	/* a key named twice counts twice */
		n += lookup(&c->srv->st, now_ns(c), av[i].p, av[i].len) != NULL;
	add_int(c, n);
}

static void incr_by(struct conn *c, struct arg *av, long long by)
{
	struct store *st = &c->srv->st;
	struct entry *e = lookup(st, now_ns(c), av[1].p, av[1].len);
	long long v = 0;
	char buf[32];
	int n;

	if (e) {
		struct arg old = { e->val, e->vlen };

		if (!to_ll(&old, &v)) {
			add_error(c, ERR_INT);
			return;
		}
	}
	if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
		add_error(c, "ERR increment or decrement would overflow");
		return;
	}
	v += by;
	n = snprintf(buf, sizeof(buf), "%lld", v);
	/* store_set keeps the deadline: INCR does not touch a key's TTL. */
	if (!store_set(st, now_ns(c), av[1].p, av[1].len, buf, (size_t)n)) {
		add_error(c, ERR_OOM);
		return;
	}
	add_int(c, v);
}

static void cmd_incr(struct conn *c, struct arg *av, size_t ac)
{
	(void)ac;
	incr_by(c, av, 1);
}

static void cmd_decr(struct conn *c, struct arg *av, size_t ac)
{
	(void)ac;
	incr_by(c, av, -1);
}

static void cmd_mget(struct conn *c, struct arg *av, size_t ac)
{
	add_array(c, ac - 1);
	for (size_t i = 1; i < ac; i++)
		cmd_get(c, av + i - 1, 2);
}

static void cmd_mset(struct conn *c, struct arg *av, size_t ac)
{
	struct store *st = &c->srv->st;

	if (ac % 2 == 0) {
		add_error(c, ERR_ARITY, "mset");
		return;
	}
	for (size_t i = 1; i < ac; i += 2) {
		struct entry *e = store_set(st, now_ns(c), av[i].p, av[i].len,
					    av[i + 1].p, av[i + 1].len);

		if (!e) {
			add_error(c, ERR_OOM);
			return;
		}
		set_expire(st, e, 0);	/* as SET: no deadline any more */
	}
	expiry_arm(c->srv);
	add_str(c, "+OK\r\n");
}

static void cmd_expire(struct conn *c, struct arg *av, size_t ac)
{
	struct store *st = &c->srv->st;
	struct entry *e;
	uint64_t expire;
	long long t;

	if (ac > 3) {
		add_error(c, "ERR Unsupported option %.*s", (int)av[3].len,
			  av[3].p);
		return;
	}
	if (!to_ll(&av[2], &t)) {
		add_error(c, ERR_INT);
		return;
	}
	e = lookup(st, now_ns(c), av[1].p, av[1].len);
	if (!e) {
		add_int(c, 0);
		return;
	}
	if (t <= 0) {			/* already past: delete now */
		entry_free(st, e);
	} else {
		if (t > LLONG_MAX / 1000 ||
		    !(expire = deadline_ms(c, t * 1000))) {
			add_error(c, ERR_EXPIRE, "expire");
			return;
		}
		if (set_expire(st, e, expire) < 0) {
			add_error(c, ERR_OOM);
			return;
		}
	}
	expiry_arm(c->srv);
	add_int(c, 1);
}

static void ttl(struct conn *c, struct arg *av, bool ms)
{
	struct entry *e = lookup(&c->srv->st, now_ns(c), av[1].p, av[1].len);
	uint64_t left_ms;

	if (!e) {
		add_int(c, -2);
	} else if (!e->expire) {
		add_int(c, -1);
	} else {
		left_ms = (e->expire - now_ns(c) + 999999) / 1000000;
		add_int(c, (long long)(ms ? left_ms : (left_ms + 500) / 1000));
	}
}

static void cmd_ttl(struct conn *c, struct arg *av, size_t ac)
{
	(void)ac;
	ttl(c, av, false);
}

static void cmd_pttl(struct conn *c, struct arg *av, size_t ac)
{
	(void)ac;
	ttl(c, av, true);
}

static void cmd_dbsize(struct conn *c, struct arg *av, size_t ac)
{
	(void)av, (void)ac;
	/* Keys past their deadline but not yet deleted count, as in Redis. */
	add_int(c, (long long)c->srv->st.count);
}

static void cmd_flushall(struct conn *c, struct arg *av, size_t ac)
{
	if (ac > 2 ||
	    (ac == 2 && !is(&av[1], "ASYNC") && !is(&av[1], "SYNC"))) {
		add_error(c, ERR_SYNTAX);
		return;
	}
	store_clear(&c->srv->st);
	expiry_arm(c->srv);
	add_str(c, "+OK\r\n");
}

static void cmd_select(struct conn *c, struct arg *av, size_t ac)
{
	long long db;

	(void)ac;
	if (!to_ll(&av[1], &db))
		add_error(c, ERR_INT);
	else if (db != 0)
		add_error(c, "ERR DB index is out of range");
	else
		add_str(c, "+OK\r\n");
}

static void cmd_quit(struct conn *c, struct arg *av, size_t ac)
{
	(void)av, (void)ac;
	add_str(c, "+OK\r\n");
	c->quit = true;
}

static void cmd_command(struct conn *c, struct arg *av, size_t ac);

/* CONFIG GET: redis-benchmark asks for "save" and "appendonly" before it
 * starts; the truthful answers are "nothing is saved". Other parameters
 * are unknown (an empty list, as Redis says for a name it lacks). */
static void cmd_config(struct conn *c, struct arg *av, size_t ac)
{
	if (!is(&av[1], "GET") || ac != 3) {
		add_error(c, "ERR unknown subcommand or wrong number of "
			  "arguments for '%.*s'", (int)av[1].len, av[1].p);
	} else if (is(&av[2], "save") || is(&av[2], "appendonly")) {
		add_array(c, 2);
		add_bulk(c, av[2].p, av[2].len);
		if (is(&av[2], "save"))
			add_bulk(c, "", 0);
		else
			add_bulk(c, "no", 2);
	} else {
		add_array(c, 0);
	}
}

static const struct command {
	const char *name;	/* lower case, as errors quote it */
	int arity;		/* as Redis: n exactly, or -n: at least n */
	void (*run)(struct conn *c, struct arg *av, size_t ac);
} commands[] = {
	{ "get", 2, cmd_get },
	{ "set", -3, cmd_set },
	{ "ping", -1, cmd_ping },
	{ "echo", 2, cmd_echo },
	{ "del", -2, cmd_del },
	{ "exists", -2, cmd_exists },
	{ "incr", 2, cmd_incr },
	{ "decr", 2, cmd_decr },
	{ "mget", -2, cmd_mget },
	{ "mset", -3, cmd_mset },
	{ "expire", -3, cmd_expire },
	{ "ttl", 2, cmd_ttl },
	{ "pttl", 2, cmd_pttl },
	{ "dbsize", 1, cmd_dbsize },
	{ "flushall", -1, cmd_flushall },
	{ "flushdb", -1, cmd_flushall },
	{ "select", 2, cmd_select },
	{ "command", -1, cmd_command },
	{ "config", -2, cmd_config },
	{ "quit", -1, cmd_quit },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* COMMAND (no docs: an empty list is enough for redis-cli to start),
 * COMMAND COUNT, COMMAND DOCS. */
static void cmd_command(struct conn *c, struct arg *av, size_t ac)
{
	if (ac >= 2 && is(&av[1], "COUNT"))
		add_int(c, (long long)NCOMMANDS);
	else
		add_array(c, 0);
}

static void run_command(struct conn *c, struct arg *av, size_t ac)
{
	const struct command *cmd = NULL;

	for (size_t i = 0; i < NCOMMANDS && !cmd; i++)
		if (is(&av[0], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		char args[160] = "";
		size_t n = 0;

		/* As Redis: the first arguments, 128 bytes of them. */
		for (size_t i = 1; i < ac && n < 128; i++) {
			size_t w = av[i].len < 128 - n ? av[i].len : 128 - n;

			n += (size_t)snprintf(args + n, sizeof(args) - n,
					      "'%.*s' ", (int)w, av[i].p);
		}
		add_error(c, "ERR unknown command '%.*s', "
			  "with args beginning with: %s",
			  (int)(av[0].len < 128 ? av[0].len : 128), av[0].p,
			  args);
		return;
	}
	if ((cmd->arity > 0 && ac != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && ac < (size_t)-cmd->arity)) {
		add_error(c, ERR_ARITY, cmd->name);
		return;
	}
	cmd->run(c, av, ac);
}

/* ------------------------------------------------------------------------
 * The protocol
 * ------------------------------------------------------------------------ */

static bool push_arg(struct server *s, size_t i, const char *p, size_t len)
{
	if (i == s->argv_cap) {
		size_t cap = s->argv_cap ? 2 * s->argv_cap : 64;
		struct arg *a = realloc(s->argv, cap * sizeof(*a));

		if (!a)
			return false;
		s->argv = a;
		s->argv_cap = cap;
	}
	s->argv[i] = (struct arg){ p, len };
	return true;
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* A "*N" or "$N" number: digits (and a '-' for "*-1"), then "\r". */
static bool line_number(const char *p, const char *cr, long long *v)
{
	struct arg a = { p, (size_t)(cr - p) };

	return to_ll(&a, v);
}

/* Parse one command at in[*pos]. Returns 1 with s->argv and *argc set and
 * *pos past it, 0 when more bytes are needed (nothing consumed), or -1 on
 * a protocol error (the -ERR reply is queued: close after it). An empty
 * command ("*0", a blank inline line) is consumed with *argc 0. */
static int parse(struct conn *c, size_t *pos, size_t *argc)
{
	struct server *s = c->srv;
	const char *p = c->in + *pos, *end = c->in + c->in_len, *cr;
	long long n, len;
	size_t ac = 0;

	if (*p != '*') {
		/* Inline: "SET k v\r\n", as typed into nc or telnet. Split
		 * on blanks; no quoting. */
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *q;

		if (!nl) {
			if (end - p > INLINE_MAX) {
				add_error(c, ERR_PROTO
					  "too big inline request");
				return -1;
			}
			return 0;
		}
		for (q = p; q < nl; ) {
			const char *a;

			while (q < nl && blank(*q))
				q++;
			if (q == nl)
				break;
			a = q;
			while (q < nl && !blank(*q))
				q++;
			if (!push_arg(s, ac++, a, (size_t)(q - a))) {
				add_error(c, ERR_PROTO "out of memory");
				return -1;
			}
		}
		*pos = (size_t)(nl + 1 - c->in);
		*argc = ac;
		return 1;
	}
	cr = memchr(p, '\r', (size_t)(end - p));
	if (!cr || cr + 1 >= end) {
		if (end - p > INLINE_MAX) {
			add_error(c, ERR_PROTO "too big mbulk count string");
			return -1;
		}
		return 0;
	}
	if (!line_number(p + 1, cr, &n) || n > MAX_ARGS) {
		add_error(c, ERR_PROTO "invalid multibulk length");
		return -1;
	}
	p = cr + 2;
	for (long long i = 0; i < n; i++) {
		if (p >= end)
			return 0;
		if (*p != '$') {
			add_error(c, ERR_PROTO "expected '$', got '%c'",
				  *p);
			return -1;
		}
		cr = memchr(p, '\r', (size_t)(end - p));
		if (!cr || cr + 1 >= end) {
			if (end - p > INLINE_MAX) {
				add_error(c, ERR_PROTO
					  "too big bulk count string");
				return -1;
			}
			return 0;
		}
		if (!line_number(p + 1, cr, &len) || len < 0 ||
		    len > MAX_BULK) {
			add_error(c, ERR_PROTO "invalid bulk length");
			return -1;
		}
		p = cr + 2;
		if (end - p < len + 2)
			return 0;
		if (!push_arg(s, ac++, p, (size_t)len)) {
			add_error(c, ERR_PROTO "out of memory");
			return -1;
		}
		p += len + 2;	/* the CRLF after the data is not checked,
				 * as Redis does not */
	}
	*pos = (size_t)(p - c->in);
	*argc = ac;
	return 1;
}

/* ------------------------------------------------------------------------
 * The connection: recv, run, send, again.
 * ------------------------------------------------------------------------ */

static void on_recv(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);
static void on_send(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);

static void conn_recv(struct conn *c)
{
	if (c->in_len == c->in_cap) {
		/* A command longer than the buffer: make room, up to the
		 * limit (Redis closes such a client without a word too). */
		size_t cap = c->in_cap ? 2 * c->in_cap : IN_INIT;
		char *in;

		if (cap > MAX_QUERY + INLINE_MAX ||
		    !(in = realloc(c->in, cap))) {
			conn_close(c);
			return;
		}
		c->in = in;
		c->in_cap = cap;
	}
	evq_prep_recv(&c->op, c->fd, c->in + c->in_len, c->in_cap - c->in_len,
		      0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_recv) == 0;
	if (!c->busy)
		conn_close(c);
}

static void conn_send(struct conn *c)
{
	evq_prep_send(&c->op, c->fd, c->out + c->out_sent,
		      c->out_len - c->out_sent, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_send) == 0;
	if (!c->busy)
		conn_close(c);
}

/* Run every whole command in the input, then send the replies, or recv
 * more if there are none. */
static void conn_run(struct conn *c)
{
	size_t pos = 0, argc;
	int r;

	while (!c->quit && pos < c->in_len && c->out_len < OUT_SOFT) {
		r = parse(c, &pos, &argc);
		if (r == 0)
			break;
		if (r < 0) {
			c->quit = true;
			break;
		}
		if (argc)
			run_command(c, c->srv->argv, argc);
	}
	c->in_len -= pos;
	memmove(c->in, c->in + pos, c->in_len);
	if (c->in_cap > 4 * IN_INIT && c->in_len <= IN_INIT) {
		char *in = realloc(c->in, IN_INIT);	/* shrink back */

		if (in) {
			c->in = in;
			c->in_cap = IN_INIT;
		}
	}
	if (c->oom)
		conn_close(c);
	else if (c->out_len)
		conn_send(c);
	else if (c->quit)
		conn_close(c);
	else
		conn_recv(c);
}

/*
 * Look again before sleeping. When evq-kv is faster than its clients, its
 * loop keeps running out of work for a few microseconds: the next request
 * is on its way. Sleeping then is not free, and the client pays for it:
 * its send finds evq-kv asleep and has to wake it (try_to_wake_up, an IPI
 * to the CPU evq-kv sleeps on, and in a virtual machine an exit to the
 * hypervisor). Measured here with redis-benchmark -P 16 and the client on
 * its own saturated CPU: about 10000 sleeps per million GETs, 5 us of the
 * client's CPU each, the 6 % of client CPU per request by which evq-kv
 * lost to redis-server (which is slower, so busy enough to seldom sleep).
 *
 * So after a recv, an idle hook keeps the loop from blocking: its waits
 * only look, for up to spin_ns from the first look that found nothing.
 * If a request comes in that time it is served without a wakeup; if not,
 * the hook stops and the loop sleeps as before. The price is CPU time spun
 * while idle: the server's CPU per request then counts spinning, not only
 * work. The window adapts, as the kernel's haltpoll cpuidle driver does:
 * when the loop slept and the next request came less than SPIN_MAX_NS
 * after it gave up, a longer window would have caught it, so it doubles
 * (up to SPIN_MAX_NS); when it came later, no window would have, so it
 * halves (down to SPIN_MIN_NS). Busy clients keep it long; a server that
 * gets a request now and then stops spinning for nothing.
 * EVQ_KV_SPIN_US sets the longest window (0: never spin).
 */
static void on_spin(struct evq_loop *loop, struct evq_hook *h)
{
	struct server *s = h->data;
	uint64_t now = evq_now_update(loop);

	if (!s->spin_since) {
		s->spin_since = now;
	} else if (now - s->spin_since >= s->spin_ns) {
		evq_hook_stop(h);	/* nothing came: sleep */
		s->slept_at = now;
	}
}

/* A request came in: adapt the window if the loop slept, and spin again
 * once it runs out of work. */
static void spin_arm(struct server *s)
{
	if (!s->spin_max || s->stopping)
		return;
	if (s->slept_at) {
		if (evq_now(s->loop) - s->slept_at < s->spin_max)
			s->spin_ns = s->spin_ns * 2 < s->spin_max ?
				     s->spin_ns * 2 : s->spin_max;
		else if (s->spin_ns / 2 >= SPIN_MIN_NS)
			s->spin_ns /= 2;
		s->slept_at = 0;
	}
	s->spin_since = 0;
	if (!evq_hook_is_active(&s->spin)) {
		evq_hook_start(s->loop, &s->spin, EVQ_HOOK_IDLE, on_spin);
		/* Spinning alone does not keep the server running. */
		evq_hook_unref(&s->spin);
	}
}

static bool op_done(struct conn *c)
{
	c->busy = false;
	if (c->want_close) {
		conn_close(c);
		return true;
	}
	return false;
}

static void on_recv(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res <= 0) {
		conn_close(c);	/* EOF or an error */
		return;
	}
	c->in_len += (size_t)res;
	spin_arm(c->srv);
	conn_run(c);
}

static void on_send(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res < 0) {
		conn_close(c);
		return;
	}
	c->out_sent += (size_t)res;
	if (c->out_sent < c->out_len) {
		conn_send(c);
		return;
	}
	c->out_len = c->out_sent = 0;
	if (c->out_cap > 4 * OUT_INIT) {	/* after a big reply */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	conn_run(c);	/* commands left over from OUT_SOFT, or recv */
}

static void conn_free(struct conn *c)
{
	struct server *s = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->in);
	free(c->out);
	free(c);
	if (!s->accepting && !s->stopping)
		accept_arm(s);
}

static void on_close(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)res, (void)flags;
	c->fd = -1;
	conn_close(c);
}

/* The close op ends the recv or send in flight (-ECANCELED) before the fd
 * number is freed; free once both have called back. */
static void conn_close(struct conn *c)
{
	c->want_close = true;
	if (c->fd >= 0 && !c->close_sent) {
		evq_prep_close(&c->close, c->fd);
		c->close.data = c;
		if (evq_op_submit(c->srv->loop, &c->close, 0, on_close) == 0) {
			c->close_sent = true;
		} else {
			close(c->fd);
			c->fd = -1;
		}
	}
	if (c->fd < 0 && !c->busy)
		conn_free(c);
}

static void conn_new(struct server *s, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->op.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	conn_recv(c);
}

/* ------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------ */

static void on_accept_retry(struct evq_loop *loop, struct evq_timer *t)
{
	struct server *s = t->data;

	(void)loop;
	if (!s->accepting && !s->stopping)
		accept_arm(s);
}

static void on_accept(struct evq_loop *loop, struct evq_op *op, int res,
		      unsigned flags)
{
	struct server *s = op->data;

	if (res >= 0) {
		if (s->stopping)
			close(res);
		else
			conn_new(s, res);
	}
	if (flags & EVQ_OP_F_MORE)
		return;
	s->accepting = false;
	if (s->stopping)
		return;
	if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS ||
	    res == -ENOMEM) {
		/* Out of fds: resume when a connection closes (conn_free), or
		 * after a while if none is open to close. */
		if (!s->conns)
			evq_timer_start(loop, &s->accept_retry, ACCEPT_RETRY_NS,
					0, on_accept_retry);
		return;
	}
	accept_arm(s);
}

static void accept_arm(struct server *s)
{
	evq_timer_stop(&s->accept_retry);
	evq_prep_accept(&s->accept, s->listen_fd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->accept.data = s;
	s->accepting = evq_op_submit(s->loop, &s->accept, EVQ_OP_MULTISHOT,
				     on_accept) == 0;
}

static void on_listener_closed(struct evq_loop *loop, struct evq_op *op,
			       int res, unsigned flags)
{
	(void)loop, (void)op, (void)res, (void)flags;
}

static void on_signal(struct evq_loop *loop, struct evq_signal *sig)
{
	struct server *s = sig->data;
	struct conn *c, *next;

	s->stopping = true;
	evq_hook_stop(&s->spin);
	evq_signal_stop(&s->sigint);
	evq_signal_stop(&s->sigterm);
	evq_timer_stop(&s->accept_retry);
	evq_timer_stop(&s->expiry);
	evq_prep_close(&s->close_listener, s->listen_fd);
	evq_op_submit(loop, &s->close_listener, 0, on_listener_closed);
	/* As redis-server on SIGTERM: replies in flight are dropped. */
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
}

static int listen_on(long port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		close(fd);
		return -1;
	}
	printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

/* EVQ_KV_SPIN_US, in microseconds (at most a second), or SPIN_MAX_NS. */
static uint64_t spin_window(void)
{
	const char *v = getenv("EVQ_KV_SPIN_US");
	char *end;
	unsigned long us;

	if (!v || !*v)
		return SPIN_MAX_NS;
	us = strtoul(v, &end, 10);
	if (*end || us > 1000000)
		return SPIN_MAX_NS;
	return (uint64_t)us * 1000;
}

int main(int argc, char **argv)
{
	static struct server s;
	char *end;
	long port = 6380;
	int ret;

	if (argc > 2 || (argc == 2 && ((port = strtol(argv[1], &end, 10)) < 0 ||
				       port > 65535 || *end || !*argv[1]))) {
		fprintf(stderr, "usage: evq-kv [PORT]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (store_init(&s.st) < 0) {
		fprintf(stderr, "evq-kv: %s\n", strerror(ENOMEM));
		return 1;
	}
	ret = evq_loop_new(&s.loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq-kv: loop: %s\n", strerror(-ret));
		free(s.st.buckets);
		return 1;
	}
	s.listen_fd = listen_on(port);
	if (s.listen_fd < 0) {
		fprintf(stderr, "evq-kv: 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		evq_loop_free(s.loop);
		free(s.st.buckets);
		return 1;
	}
	s.sigint.data = s.sigterm.data = s.accept_retry.data = &s;
	s.expiry.data = &s;
	s.spin.data = &s;
	s.spin_ns = s.spin_max = spin_window();
	evq_signal_start(s.loop, &s.sigint, SIGINT, on_signal);
	evq_signal_start(s.loop, &s.sigterm, SIGTERM, on_signal);
	accept_arm(&s);

	ret = evq_loop_run(s.loop, EVQ_RUN_DEFAULT);	/* until stopped */
	if (ret < 0)
		fprintf(stderr, "evq-kv: run: %s\n", strerror(-ret));
	evq_loop_free(s.loop);
	store_clear(&s.st);
	free(s.st.buckets);
	free(s.st.heap);
	free(s.argv);
	return ret < 0;
}
