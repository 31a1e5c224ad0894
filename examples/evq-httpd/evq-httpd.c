/* SPDX-License-Identifier: MIT */
/*
 * evq-httpd - a static file server on 127.0.0.1: HTTP/1.1 GET and HEAD,
 * keep-alive and pipelined requests, written with evq's completion API:
 * accept, recv, openat, statx, read, send and close are all ops.
 *
 *   evq-httpd DIR [PORT]     (default 8080; 0 picks a free port)
 *
 * It prints "listening on 127.0.0.1:PORT", serves the files under DIR
 * (index.html for a directory), and exits cleanly, everything freed, on
 * SIGINT or SIGTERM.
 *
 * What it teaches:
 *  - A connection as a small state machine with exactly one op in flight
 *    at a time: recv a request, openat and statx the file, then read a
 *    block of it and send it, block after block. One op at a time makes
 *    backpressure free (a slow client leaves its send waiting, nothing is
 *    read meanwhile) and closing simple (see conn_close).
 *  - Blocking calls off the loop: openat, statx and reads of regular files
 *    run natively on io_uring and in the loop's thread pool elsewhere, so
 *    one slow disk never stalls the other connections.
 *  - The body without a copy: the first block of the file is read into
 *    the connection's buffer and rides with the header, in one send (a
 *    small file is then done in one read and one send). The rest goes
 *    file -> pipe -> socket by two splice ops per block, through a pipe
 *    the connection makes at its first big file (1 MiB if the system
 *    allows: one block for a 1 MiB file): the bytes stay in the kernel's
 *    page cache pages, never copied to user space and back. A
 *    kernel or file system that cannot splice (-EINVAL, -ENOTSUP) makes
 *    the server fall back to read + send, the copy, for good.
 *  - Never serving outside DIR: the path is percent-decoded, then any ".."
 *    segment is refused; symlinks are followed by openat, so the opened
 *    file's real path (/proc/self/fd) must still be under DIR's.
 *  - Bounded input: a request head is at most REQ_MAX bytes (414 when even
 *    the request line does not fit, 431 otherwise), and a connection that
 *    makes no progress for IDLE_NS is closed (one evq timer each).
 *  - Closing politely: after an error the server shuts its side down and
 *    reads (and drops) what the client still sends for a moment, so that
 *    the client reads the answer rather than a reset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <evq.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 8192		/* request line and headers, at most */
#define OUT_SIZE (64 * 1024)	/* a connection's response buffer */
#define PIPE_SIZE (1024 * 1024)	/* asked of a connection's pipe: the bytes
				 * spliced per block (see splice_in) */
#define IDLE_NS 10000000000ull	/* 10 s without progress: close */
#define LINGER_NS 1000000000ull	/* 1 s to read what follows an error */
#define ACCEPT_RETRY_NS 100000000ull	/* 100 ms, when out of fds */

struct server {
	struct evq_loop *loop;
	int listen_fd;
	int root_fd;		/* DIR, the base of every openat */
	char root[PATH_MAX];	/* DIR's real path */
	size_t root_len;
	struct evq_op accept, close_listener;
	struct evq_timer accept_retry;
	struct evq_signal sigint, sigterm;
	bool accepting, stopping;
	bool no_splice;		/* splice failed with -EINVAL/-ENOTSUP: copy */
	struct conn *conns;
	time_t date_time;	/* the Date header, made once a second */
	char date[40];
};

enum conn_state {
	C_REQUEST,		/* recv: waiting for a whole request head */
	C_FILE,			/* openat/statx/read, or a splice file ->
				 * pipe: a file op in flight */
	C_SEND,			/* send, or a splice pipe -> socket: the
				 * response, block by block */
	C_LINGER,		/* recv: dropping input before closing */
};

struct conn {
	struct server *srv;
	int fd;			/* the socket, -1 once closed */
	int file_fd, dir_fd;	/* what this request opened, or -1 */
	int pipe[2];		/* for splice, made at the first big file;
				 * -1 until then */
	size_t pipe_size;	/* what it holds */
	enum conn_state state;
	struct evq_op op;	/* the one op in flight */
	struct evq_op close;
	struct evq_timer idle;
	bool busy;		/* op in flight */
	bool want_close;	/* close as soon as no file op is in flight */
	bool close_sent;	/* the close op was submitted */
	bool keep_alive;	/* after this response, read the next one */
	bool head_only;		/* HEAD: the header, no body */
	bool http10;		/* an HTTP/1.0 request */
	int status;		/* an error to answer the request with, or 0 */
	const char *path;	/* the file, relative to DIR, in `in` */
	struct statx stx;
	uint64_t off, end;	/* file bytes: the next to read, the end */
	size_t piped;		/* bytes in the pipe, not yet sent */
	size_t out_len, out_sent;
	char *out;		/* OUT_SIZE bytes, made at the first response */
	size_t in_len;		/* bytes in `in` */
	size_t req_len;		/* of them, the request being answered */
	struct conn *next, *prev;
	char in[REQ_MAX];
};

static void accept_arm(struct server *s);
static void conn_close(struct conn *c);
static void next_request(struct conn *c);

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static const char *content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ "html", "text/html; charset=utf-8" },
		{ "htm", "text/html; charset=utf-8" },
		{ "css", "text/css; charset=utf-8" },
		{ "js", "text/javascript; charset=utf-8" },
		{ "json", "application/json" },
		{ "txt", "text/plain; charset=utf-8" },
		{ "xml", "application/xml" },
		{ "svg", "image/svg+xml" },
		{ "png", "image/png" },
		{ "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" },
		{ "gif", "image/gif" },
		{ "webp", "image/webp" },
		{ "ico", "image/x-icon" },
		{ "pdf", "application/pdf" },
		{ "wasm", "application/wasm" },
	};
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');

	if (dot)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

/* The Date header every response carries (RFC 9110: an origin server
 * with a clock must send it), formatted at most once a second. */
static const char *http_date(struct server *s)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != s->date_time && gmtime_r(&now, &tm)) {
		strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT",
			 &tm);
		s->date_time = now;
	}
	return s->date;
}

/* Write the status line and headers at the start of c->out. */
static size_t put_head(struct conn *c, int status, const char *type,
		       uint64_t length)
{
	int n = snprintf(c->out, OUT_SIZE,
			 "HTTP/1.1 %d %s\r\n"
			 "Server: evq-httpd\r\n"
			 "Date: %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %llu\r\n"
			 "%s%s\r\n",
			 status, reason(status), http_date(c->srv), type,
			 (unsigned long long)length,
			 status == 405 ? "Allow: GET, HEAD\r\n" : "",
			 !c->keep_alive ? "Connection: close\r\n" :
			 c->http10 ? "Connection: keep-alive\r\n" : "");

	return (size_t)n;	/* a few hundred bytes: always fits */
}

static void on_send(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);
static void on_read(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);

static void send_out(struct conn *c)
{
	c->state = C_SEND;
	evq_prep_send(&c->op, c->fd, c->out + c->out_sent,
		      c->out_len - c->out_sent, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_send) == 0;
	if (!c->busy)
		conn_close(c);
}

/* Read the next block of the file into c->out, after out_len bytes. */
static void read_block(struct conn *c)
{
	size_t room = OUT_SIZE - c->out_len;

	if (room > c->end - c->off)
		room = (size_t)(c->end - c->off);
	c->state = C_FILE;
	evq_prep_read(&c->op, c->file_fd, c->out + c->out_len, room, c->off);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_read) == 0;
	if (!c->busy)
		conn_close(c);
}

static void on_splice_in(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags);
static void on_splice_out(struct evq_loop *loop, struct evq_op *op, int res,
			  unsigned flags);

/* Make the connection's pipe, as large as the system lets us have it. Each
 * block costs two ops, and on io_uring each splice runs in a worker
 * thread (io-wq), so fewer, larger blocks are cheaper: a pipe of 1 MiB
 * sends a 1 MiB file in one splice from the file. Spliced pages are the
 * page cache's own, referenced, not copied: a big pipe costs its array
 * of slots (40 bytes per page it can hold, 10 KiB here), not 1 MiB. Past
 * fs.pipe-max-size, or the user's fs.pipe-user-pages-soft, the kernel
 * refuses or shrinks it, and the pipe keeps what it has. */
static int make_pipe(struct conn *c)
{
	int sz;

	if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		c->pipe[0] = c->pipe[1] = -1;
		return -1;
	}
	fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	sz = fcntl(c->pipe[1], F_GETPIPE_SZ);
	c->pipe_size = sz > 0 ? (size_t)sz : 4096;
	return 0;
}

/* Splice the next block of the file into the (empty) pipe. Where there is
 * no pipe and none can be made (out of fds), or splice failed before,
 * read it into c->out instead. */
static void splice_in(struct conn *c)
{
	size_t len;

	if (!c->srv->no_splice && c->pipe[0] < 0)
		make_pipe(c);
	if (c->srv->no_splice || c->pipe[0] < 0) {
		read_block(c);
		return;
	}
	len = c->pipe_size;
	if (len > c->end - c->off)
		len = (size_t)(c->end - c->off);
	/* A file op like a read: conn_close waits for it (it cannot wait
	 * on the empty pipe, nor on the client). */
	c->state = C_FILE;
	evq_prep_splice(&c->op, c->file_fd, (int64_t)c->off, c->pipe[1], -1,
			len, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_splice_in) == 0;
	if (!c->busy)
		conn_close(c);
}

/* Send what the pipe holds: this one waits on the client, as a send. */
static void splice_out(struct conn *c)
{
	c->state = C_SEND;
	evq_prep_splice(&c->op, c->pipe[0], -1, c->fd, -1, c->piped, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_splice_out) == 0;
	if (!c->busy)
		conn_close(c);
}

static int ensure_out(struct conn *c)
{
	if (!c->out)
		c->out = malloc(OUT_SIZE);
	return c->out ? 0 : -ENOMEM;
}

/* An error page: a status line, a small text body. 400, 414 and 431 say
 * the request cannot be trusted to end where we think: close after. */
static void respond_error(struct conn *c, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
			 reason(status));

	if (ensure_out(c) < 0) {
		conn_close(c);
		return;
	}
	if (status == 400 || status == 414 || status == 431)
		c->keep_alive = false;
	c->out_len = put_head(c, status, "text/plain; charset=utf-8",
			      (uint64_t)n);
	if (!c->head_only) {
		memcpy(c->out + c->out_len, body, (size_t)n);
		c->out_len += (size_t)n;
	}
	c->out_sent = 0;
	c->off = c->end = 0;
	send_out(c);
}

/* 200: the header now, the first block of the body with it. */
static void respond_file(struct conn *c)
{
	if (ensure_out(c) < 0) {
		conn_close(c);
		return;
	}
	c->out_len = put_head(c, 200, content_type(c->dir_fd >= 0 ?
						   "index.html" : c->path),
			      c->stx.stx_size);
	c->out_sent = 0;
	c->off = 0;
	c->end = c->head_only ? 0 : c->stx.stx_size;
	if (c->off < c->end)
		read_block(c);
	else
		send_out(c);
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Turn the request target (NUL-terminated, in place) into a path relative
 * to DIR: drop the query, percent-decode, then rebuild it segment by
 * segment. Decoding comes first so that "%2e%2e" and "..%2f" are seen as
 * what they are. Returns 0 or the status to answer. */
static int target_to_path(char *t, const char **pathp)
{
	char *r, *w, *seg;

	if (t[0] != '/')
		return 400;	/* only origin-form: "/path?query" */
	t[strcspn(t, "?#")] = '\0';
	for (r = w = t; *r; r++, w++) {
		if (*r == '%') {
			int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);

			if (lo < 0 || (hi == 0 && lo == 0))
				return 400;	/* bad escape, or a NUL */
			*w = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w = *r;
		}
	}
	*w = '\0';
	/* Rebuild: no empty or "." segment, and no ".." at all (refusing
	 * it anywhere is simpler to trust than resolving it). */
	w = t;
	for (r = t; *r; ) {
		while (*r == '/')
			r++;
		seg = r;
		r += strcspn(r, "/");
		if (r == seg || (r - seg == 1 && seg[0] == '.'))
			continue;
		if (r - seg == 2 && seg[0] == '.' && seg[1] == '.')
			return 403;
		if (w != t)
			*w++ = '/';
		memmove(w, seg, (size_t)(r - seg));
		w += r - seg;
	}
	*w = '\0';
	*pathp = w == t ? "." : t;
	return 0;
}

static bool token_char(char ch)
{
	return ch > ' ' && ch < 127 && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* Find and check the request head at the start of c->in. Returns 0 when
 * more bytes are needed, minus the status to answer when the head does
 * not fit, or else the head's length, with c->status 0 and c->path set,
 * or c->status the error to answer. */
static int parse_request(struct conn *c)
{
	char *in = c->in, *end, *line, *next, *sp1, *sp2;
	bool host = false;
	int len;

	end = memmem(in, c->in_len, "\r\n\r\n", 4);
	if (!end) {
		if (c->in_len < REQ_MAX)
			return 0;
		/* Full, and still no end of head. */
		return memchr(in, '\n', c->in_len) ? -431 : -414;
	}
	len = (int)(end - in) + 4;
	c->status = 400;	/* until proven otherwise */
	c->keep_alive = c->head_only = false;
	if (memchr(in, '\0', (size_t)len))
		return len;	/* no NUL byte: the head is read as strings */
	end[2] = '\0';		/* the head is now a string of lines */

	/* The request line: METHOD SP TARGET SP VERSION */
	next = strstr(in, "\r\n");
	*next = '\0';
	next += 2;
	sp1 = strchr(in, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == in || sp2 == sp1 + 1 || strchr(sp2 + 1, ' '))
		return len;
	*sp1 = *sp2 = '\0';
	if (strcmp(sp2 + 1, "HTTP/1.1") == 0)
		c->http10 = false;
	else if (strcmp(sp2 + 1, "HTTP/1.0") == 0)
		c->http10 = true;
	else
		return len;
	for (char *p = in; *p; p++)
		if (!token_char(*p))
			return len;
	c->keep_alive = !c->http10;
	c->head_only = strcmp(in, "HEAD") == 0;

	/* Headers: only the ones that change what we do. */
	for (line = next; *line; line = next) {
		char *colon, *value;

		next = strstr(line, "\r\n");
		*next = '\0';
		next += 2;
		colon = strchr(line, ':');
		if (!colon || colon == line)
			return len;
		for (char *p = line; p < colon; p++)
			if (!token_char(*p))
				return len;	/* also "Name :" and folding */
		*colon = '\0';
		value = colon + 1 + strspn(colon + 1, " \t");
		if (strcasecmp(line, "Host") == 0) {
			if (host)
				return len;
			host = true;
		} else if (strcasecmp(line, "Connection") == 0) {
			if (strcasestr(value, "close"))
				c->keep_alive = false;
			else if (strcasestr(value, "keep-alive"))
				c->keep_alive = true;
		} else if ((strcasecmp(line, "Content-Length") == 0 &&
			    strcmp(value, "0") != 0) ||
			   strcasecmp(line, "Transfer-Encoding") == 0) {
			/* A body we will not read: answer, then close,
			 * rather than take it for the next request. */
			c->keep_alive = false;
		}
	}
	if (!c->http10 && !host)
		return len;	/* HTTP/1.1 requires Host */
	if (strcmp(in, "GET") != 0 && !c->head_only)
		return (c->status = 405, len);
	if (strlen(sp1 + 1) >= PATH_MAX)
		return (c->status = 414, len);
	c->status = target_to_path(sp1 + 1, &c->path);
	return len;
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

/* Is the open file fd under DIR? openat followed any symlinks on the way;
 * the kernel knows where it landed. Fails closed: no /proc, no file. */
static bool beneath_root(struct server *s, int fd)
{
	char link[64], real[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n < 0)
		return false;
	real[n] = '\0';
	if (s->root_len == 1)		/* DIR is "/" */
		return real[0] == '/';
	return strncmp(real, s->root, s->root_len) == 0 &&
	       (real[s->root_len] == '/' || real[s->root_len] == '\0');
}

static int open_status(int err)
{
	switch (err) {
	case -ENOENT:
	case -ENOTDIR:
	case -ENAMETOOLONG:
		return 404;
	case -EACCES:
	case -EPERM:
	case -ELOOP:
	case -ENXIO:	/* a socket, or a FIFO with no writer */
		return 403;
	case -EMFILE:
	case -ENFILE:
		return 503;
	default:
		return 500;
	}
}

static void close_files(struct conn *c)
{
	/* Plain close(): no op or watcher uses these fds any more, and
	 * closing a regular file is quick. */
	if (c->file_fd >= 0)
		close(c->file_fd);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	c->file_fd = c->dir_fd = -1;
}

/* Every callback starts here: the op is done; a close that waited for a
 * file op can go on now. Returns true when the connection is closing. */
static bool op_done(struct conn *c)
{
	c->busy = false;
	if (c->want_close) {
		conn_close(c);
		return true;
	}
	return false;
}

static void open_file(struct conn *c, int dirfd, const char *path);

static void on_statx(struct evq_loop *loop, struct evq_op *op, int res,
		     unsigned flags)
{
	struct conn *c = op->data;
	unsigned mode = c->stx.stx_mode;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res < 0) {
		respond_error(c, 500);
	} else if (!beneath_root(c->srv, c->file_fd)) {
		respond_error(c, 403);	/* a symlink out of DIR */
	} else if (S_ISDIR(mode) && c->dir_fd < 0) {
		/* A directory: its index.html, opened relative to it. */
		c->dir_fd = c->file_fd;
		c->file_fd = -1;
		open_file(c, c->dir_fd, "index.html");
	} else if (S_ISREG(mode)) {
		respond_file(c);
	} else {
		/* A directory without index.html (nginx's answer too, with
		 * no autoindex), a device, a FIFO, a socket. */
		respond_error(c, 403);
	}
}

static void on_open(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (res >= 0)
		c->file_fd = res;	/* close_files closes it either way */
	if (op_done(c))
		return;
	if (res < 0) {
		/* Under a directory, a missing index.html is "no listing". */
		respond_error(c, c->dir_fd >= 0 && res == -ENOENT ? 403 :
				 open_status(res));
		return;
	}
	evq_prep_statx(&c->op, c->file_fd, "", AT_EMPTY_PATH,
		       STATX_TYPE | STATX_MODE | STATX_SIZE, &c->stx);
	c->busy = evq_op_submit(loop, &c->op, 0, on_statx) == 0;
	if (!c->busy)
		respond_error(c, 500);
}

static void open_file(struct conn *c, int dirfd, const char *path)
{
	c->state = C_FILE;
	/* O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
	 * Reads of regular files ignore it. */
	evq_prep_openat(&c->op, dirfd, path,
			O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_open) == 0;
	if (!c->busy)
		respond_error(c, 500);
}

static void on_read(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res <= 0) {
		/* An I/O error, or the file shrank under us: the header
		 * promised more bytes than there are, so the only honest
		 * thing left is to close the connection. */
		conn_close(c);
		return;
	}
	c->off += (uint64_t)res;
	c->out_len += (size_t)res;
	send_out(c);
}

static void on_splice_in(struct evq_loop *loop, struct evq_op *op, int res,
			 unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res == -EINVAL || res == -ENOTSUP) {
		/* This kernel or file system cannot splice this file: copy,
		 * from now on (nothing went into the pipe). */
		c->srv->no_splice = true;
		read_block(c);
		return;
	}
	if (res <= 0) {
		conn_close(c);	/* an I/O error, or the file shrank: as in
				 * on_read */
		return;
	}
	c->off += (uint64_t)res;
	c->piped = (size_t)res;
	splice_out(c);
}

static void idle_restart(struct conn *c, uint64_t ns);

static void on_splice_out(struct evq_loop *loop, struct evq_op *op, int res,
			  unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res <= 0) {
		conn_close(c);	/* the client is gone */
		return;
	}
	idle_restart(c, IDLE_NS);	/* progress */
	c->piped -= (size_t)res;
	if (c->piped)
		splice_out(c);	/* the socket took part of it */
	else if (c->off < c->end)
		splice_in(c);
	else
		next_request(c);
}

/* ------------------------------------------------------------------------
 * The connection
 * ------------------------------------------------------------------------ */


static void on_send(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res < 0) {
		conn_close(c);		/* the client is gone */
		return;
	}
	idle_restart(c, IDLE_NS);	/* progress */
	c->out_sent += (size_t)res;
	if (c->out_sent < c->out_len) {
		send_out(c);		/* a short send: the rest */
	} else if (c->off < c->end) {
		c->out_len = c->out_sent = 0;
		splice_in(c);		/* the rest of the body */
	} else {
		next_request(c);
	}
}

static void on_recv(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags);

/* recv into c->in from offset `at` on. */
static void recv_in(struct conn *c, size_t at)
{
	evq_prep_recv(&c->op, c->fd, c->in + at, sizeof(c->in) - at, 0);
	c->busy = evq_op_submit(c->srv->loop, &c->op, 0, on_recv) == 0;
	if (!c->busy)
		conn_close(c);
}

static void on_recv(struct evq_loop *loop, struct evq_op *op, int res,
		    unsigned flags)
{
	struct conn *c = op->data;

	(void)loop, (void)flags;
	if (op_done(c))
		return;
	if (res <= 0) {
		conn_close(c);		/* EOF, an error, or the linger's end */
		return;
	}
	if (c->state == C_LINGER) {	/* drop it, read on */
		recv_in(c, 0);
		return;
	}
	idle_restart(c, IDLE_NS);
	c->in_len += (size_t)res;
	next_request(c);
}

/* Answer the next request in c->in, or recv more of it. Called when a
 * response is out (pipelined requests may already be waiting) and when
 * bytes arrive. */
static void next_request(struct conn *c)
{
	struct server *s = c->srv;
	int len;

	close_files(c);
	if (c->req_len) {		/* the request just answered */
		if (!c->keep_alive || s->stopping) {
			if (s->stopping) {
				conn_close(c);
				return;
			}
			/* Linger: say we are done, then read and drop
			 * what the client still sends, for LINGER_NS. */
			shutdown(c->fd, SHUT_WR);
			c->state = C_LINGER;
			idle_restart(c, LINGER_NS);
			recv_in(c, 0);
			return;
		}
		c->in_len -= c->req_len;
		memmove(c->in, c->in + c->req_len, c->in_len);
		c->req_len = 0;
	}
	/* Blank lines before a request are to be ignored (RFC 9112 2.2). */
	while (c->in_len >= 2 && c->in[0] == '\r' && c->in[1] == '\n') {
		c->in_len -= 2;
		memmove(c->in, c->in + 2, c->in_len);
	}
	len = parse_request(c);
	if (len == 0) {
		if (s->stopping && c->in_len == 0) {
			conn_close(c);
			return;
		}
		c->state = C_REQUEST;
		recv_in(c, c->in_len);
		return;
	}
	if (len < 0) {			/* the head does not fit: close */
		c->req_len = c->in_len;
		c->head_only = false;
		respond_error(c, -len);
	} else if (c->status) {
		c->req_len = (size_t)len;
		respond_error(c, c->status);
	} else {
		c->req_len = (size_t)len;
		open_file(c, s->root_fd, c->path);
	}
}

static void conn_free(struct conn *c)
{
	struct server *s = c->srv;

	evq_timer_stop(&c->idle);
	close_files(c);
	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->out);
	free(c);
	/* An fd was freed: if accept stopped for lack of fds, resume it. */
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

/* Close the connection, in steps, each call going as far as it can:
 *  1. A file op in flight (openat, statx, read, splice into the pipe) is
 *     left to finish: it is quick, and its result (a new fd) must be
 *     seen to be closed.
 *  2. The close op ends a recv, send or splice still waiting on the
 *     socket (it completes with -ECANCELED) and then closes the fd, so no
 *     op of ours can ever run on the fd number once it is reused.
 *  3. Once the close op and every other op are done, free.
 * With one op at a time there is never more than one thing to wait for.
 * A read -> send chain (EVQ_OP_LINK) per block would save a trip through
 * the loop; it would close safely too (a close op also ends a send that
 * waits in a chain behind a read of another fd, on every backend), but
 * would leave two ops to track per block.
 */
static void conn_close(struct conn *c)
{
	c->want_close = true;
	evq_timer_stop(&c->idle);
	if (c->busy && c->state == C_FILE)
		return;
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

static void on_idle(struct evq_loop *loop, struct evq_timer *t)
{
	(void)loop;
	conn_close(t->data);	/* no progress for IDLE_NS, or linger over */
}

static void idle_restart(struct conn *c, uint64_t ns)
{
	evq_timer_start(c->srv->loop, &c->idle, ns, 0, on_idle);
}

static void conn_new(struct server *s, int fd)
{
	/* Not calloc: `in` is written by recv before it is read. */
	struct conn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	memset(c, 0, offsetof(struct conn, in));
	c->srv = s;
	c->fd = fd;
	c->file_fd = c->dir_fd = -1;
	c->pipe[0] = c->pipe[1] = -1;
	c->op.data = c->idle.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	idle_restart(c, IDLE_NS);
	next_request(c);
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
	evq_signal_stop(&s->sigint);
	evq_signal_stop(&s->sigterm);
	evq_timer_stop(&s->accept_retry);
	/* Closing the listener through an op ends the accept op too. */
	evq_prep_close(&s->close_listener, s->listen_fd);
	evq_op_submit(loop, &s->close_listener, 0, on_listener_closed);
	/* Connections waiting for a request close now; the others once
	 * their response is out (next_request sees s->stopping). */
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->state == C_REQUEST || c->state == C_LINGER)
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

int main(int argc, char **argv)
{
	static struct server s;
	char *end = NULL;
	long port = 8080;
	int ret;

	if (argc < 2 || argc > 3 || !*argv[1] ||
	    (argc == 3 && ((port = strtol(argv[2], &end, 10)) < 0 ||
			   port > 65535 || *end || !*argv[2]))) {
		fprintf(stderr, "usage: evq-httpd DIR [PORT]\n");
		return 2;
	}
	s.root_fd = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.root_fd < 0 || !realpath(argv[1], s.root)) {
		fprintf(stderr, "evq-httpd: %s: %s\n", argv[1],
			strerror(errno));
		if (s.root_fd >= 0)
			close(s.root_fd);
		return 1;
	}
	s.root_len = strlen(s.root);
	signal(SIGPIPE, SIG_IGN);
	ret = evq_loop_new(&s.loop, NULL);
	if (ret < 0) {
		fprintf(stderr, "evq-httpd: loop: %s\n", strerror(-ret));
		close(s.root_fd);
		return 1;
	}
	s.listen_fd = listen_on(port);
	if (s.listen_fd < 0) {
		fprintf(stderr, "evq-httpd: 127.0.0.1:%ld: %s\n", port,
			strerror(errno));
		evq_loop_free(s.loop);
		close(s.root_fd);
		return 1;
	}
	s.sigint.data = s.sigterm.data = s.accept_retry.data = &s;
	evq_signal_start(s.loop, &s.sigint, SIGINT, on_signal);
	evq_signal_start(s.loop, &s.sigterm, SIGTERM, on_signal);
	accept_arm(&s);

	ret = evq_loop_run(s.loop, EVQ_RUN_DEFAULT);	/* until stopped */
	if (ret < 0)
		fprintf(stderr, "evq-httpd: run: %s\n", strerror(-ret));
	evq_loop_free(s.loop);
	close(s.root_fd);
	return ret < 0;
}
