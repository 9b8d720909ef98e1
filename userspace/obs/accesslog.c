/* SPDX-License-Identifier: Apache-2.0 */
#include "obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/json.h"

#define FLUSH_AT	(32 * 1024)	/* pending bytes that trigger a write */
#define PENDING_MAX	(1024 * 1024)	/* past this, the oldest lines go */
#define PENDING_RESERVE	(64 * 1024)	/* allocated up front: no malloc per line */

/* ---- formatting ---- */

/* Appends with a sticky error, so accesslog_format reads like the line. */
struct line {
	struct buf *out;
	int err;
};

static void put(struct line *l, const char *p, size_t n)
{
	if (!l->err)
		l->err = buf_append(l->out, p, n);
}

#define PUT_LIT(l, s) put(l, s, sizeof(s) - 1)

static __attribute__((format(printf, 2, 3))) void putf(struct line *l, const char *fmt, ...)
{
	va_list ap;

	if (l->err)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (l->err = buf_reserve(l->out, (size_t)n + 1)))
		return;
	va_start(ap, fmt);
	vsnprintf(buf_tail(l->out), buf_room(l->out), fmt, ap);
	va_end(ap);
	l->out->len += (size_t)n;
}

/* A JSON string, or null for a span that is not there. */
static void put_string(struct line *l, struct str s)
{
	if (!s.p) {
		PUT_LIT(l, "null");
		return;
	}
	if (l->err)
		return;
	int n = json_escape(buf_tail(l->out), buf_room(l->out), s.p, s.len);
	/* Try the room there is first; only grow for the worst case (every
	 * byte a six-byte escape) when that is not enough. */
	if (n == -ENOSPC) {
		if (s.len > (SIZE_MAX - 2) / 6) {
			l->err = -ENOMEM;
			return;
		}
		l->err = buf_reserve(l->out, s.len * 6 + 2);
		if (l->err)
			return;
		n = json_escape(buf_tail(l->out), buf_room(l->out), s.p, s.len);
	}
	if (n < 0) {
		l->err = n;
		return;
	}
	l->out->len += (size_t)n;
}

static void put_cstring(struct line *l, const char *s)
{
	put_string(l, str_from(s));
}

/* ,"key":n  or  ,"key":null  for a count the backend did not report */
static void put_tokens(struct line *l, const char *key, int64_t n)
{
	if (n < 0)
		putf(l, ",\"%s\":null", key);
	else
		putf(l, ",\"%s\":%" PRId64, key, n);
}

/* Milliseconds with three decimals, truncated to the microsecond. */
static void put_ms(struct line *l, const char *key, uint64_t ns)
{
	uint64_t us = ns / 1000;

	putf(l, ",\"%s\":%" PRIu64 ".%03" PRIu64, key, us / 1000, us % 1000);
}

/* Proleptic Gregorian date of a day count since 1970-01-01 (Howard
 * Hinnant's days_from_civil inverted); gmtime_r would take glibc's
 * time-zone lock on every request. */
static void civil_date(uint64_t days, unsigned *year, unsigned *month, unsigned *day)
{
	uint64_t z = days + 719468;
	uint64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*day = doy - (153 * mp + 2) / 5 + 1;
	*month = mp < 10 ? mp + 3 : mp - 9;
	*year = (unsigned)(yoe + era * 400) + (*month <= 2);
}

/* "time":"2026-11-27T09:30:00.123Z" */
static void put_time(struct line *l, uint64_t real_ns)
{
	uint64_t ms = real_ns / 1000000;
	uint64_t secs = ms / 1000;
	unsigned year, month, day;
	unsigned sod = (unsigned)(secs % 86400);

	civil_date(secs / 86400, &year, &month, &day);
	putf(l, "{\"time\":\"%04u-%02u-%02uT%02u:%02u:%02u.%03uZ\"",
	     year, month, day, sod / 3600, sod / 60 % 60, sod % 60, (unsigned)(ms % 1000));
}

int accesslog_format(const struct request_record *rec, struct buf *out)
{
	struct line l = { .out = out };
	/* in live bytes: a reserve may compact the buffer and move off */
	size_t start = buf_used(out);

	put_time(&l, rec->start_real_ns);
	putf(&l, ",\"worker\":%u,\"method\":", rec->worker);
	put_string(&l, rec->method);
	PUT_LIT(&l, ",\"path\":");
	put_string(&l, rec->path);
	PUT_LIT(&l, ",\"model\":");
	put_string(&l, rec->model);
	PUT_LIT(&l, ",\"backend\":");
	put_cstring(&l, rec->backend_name);
	if (rec->route) {
		PUT_LIT(&l, ",\"route\":");
		put_cstring(&l, rec->route);
		if (rec->upstream_model) {
			PUT_LIT(&l, ",\"upstream_model\":");
			put_cstring(&l, rec->upstream_model);
		}
		putf(&l, ",\"attempts\":%u", rec->attempts);
	}
	if (rec->guardrails && rec->guardrails[0]) {
		PUT_LIT(&l, ",\"guardrails\":");
		put_cstring(&l, rec->guardrails);
	}
	PUT_LIT(&l, ",\"tenant\":");
	put_cstring(&l, rec->tenant);
	if (rec->client_cert) {
		PUT_LIT(&l, ",\"client_cert\":");
		put_cstring(&l, rec->client_cert);
	}
	if (rec->auth) {
		PUT_LIT(&l, ",\"auth\":");
		put_cstring(&l, rec->auth);
	}
	if (rec->key_id) {
		PUT_LIT(&l, ",\"key_id\":");
		put_cstring(&l, rec->key_id);
	}
	putf(&l, ",\"status\":%d,\"stream\":%s", rec->status, rec->stream ? "true" : "false");
	put_tokens(&l, "tokens_in", rec->usage.prompt_tokens);
	put_tokens(&l, "tokens_out", rec->usage.completion_tokens);
	put_tokens(&l, "tokens_cached", rec->usage.cached_tokens);
	put_tokens(&l, "tokens_reasoning", rec->usage.reasoning_tokens);
	put_ms(&l, "latency_ms", rec->latency_ns);
	if (rec->ttft_ns)
		put_ms(&l, "ttft_ms", rec->ttft_ns);
	else
		PUT_LIT(&l, ",\"ttft_ms\":null");
	putf(&l, ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"error\":",
	     rec->bytes_in, rec->bytes_out);
	put_cstring(&l, rec->error_code);
	PUT_LIT(&l, "}\n");

	/* Never leave half a line behind. */
	if (l.err)
		out->len = out->off + start;
	return l.err;
}

/* ---- output ---- */

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t lines = 0;
	const char *end = p + n;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
		lines++;
		p++;
	}
	return lines;
}

/*
 * The destination has not taken our bytes for a while: drop whole lines,
 * oldest first, down to half the limit so that the next lines do not each
 * pay for a drop.  The first line stays: a partial write may already have
 * sent its beginning, and cutting it would splice two lines together.
 */
static void drop_oldest(struct accesslog *log)
{
	struct buf *b = &log->pending;
	char *head = buf_head(b), *end = buf_tail(b);
	char *first_end = memchr(head, '\n', buf_used(b));

	if (!first_end)
		return;
	char *keep = first_end + 1, *cut = keep;
	while (cut < end && (size_t)(keep - head) + (size_t)(end - cut) > PENDING_MAX / 2) {
		char *nl = memchr(cut, '\n', (size_t)(end - cut));
		cut = nl ? nl + 1 : end;
		log->dropped++;
	}
	memmove(keep, cut, (size_t)(end - cut));
	b->len -= (size_t)(cut - keep);
}

void accesslog_flush(struct accesslog *log)
{
	struct buf *b = &log->pending;

	while (log->fd >= 0 && buf_used(b)) {
		ssize_t n = write(log->fd, buf_head(b), buf_used(b));
		if (n > 0) {
			buf_consume(b, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* A non-blocking destination that is full: try again at the
		 * next flush; drop_oldest bounds what piles up meanwhile. */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* Disk full, pipe closed, ...: the lines cannot be kept for
		 * ever, and the request path must not stall on them. */
		log->dropped += count_lines(buf_head(b), buf_used(b));
		buf_reset(b);
		return;
	}
}

void accesslog_write(struct accesslog *log, const struct request_record *rec)
{
	if (log->fd < 0)
		return;
	if (accesslog_format(rec, &log->pending) < 0) {
		log->dropped++;
		return;
	}
	if (buf_used(&log->pending) > FLUSH_AT)
		accesslog_flush(log);
	if (buf_used(&log->pending) > PENDING_MAX)
		drop_oldest(log);
}

static int accesslog_attach(struct accesslog *log, int fd)
{
	int err = buf_reserve(&log->pending, PENDING_RESERVE);

	if (err) {
		close(fd);
		return err;
	}
	log->fd = fd;
	return 0;
}

/* Every handle writes through a descriptor of its own (a dup for stdout
 * and for other workers), so each one closes its own and the order in
 * which workers close does not matter. */
int accesslog_open(struct accesslog *log, const char *dest)
{
	int fd;

	*log = (struct accesslog){ .fd = -1 };
	if (!dest || strcmp(dest, "off") == 0)
		return 0;
	if (strcmp(dest, "-") == 0)
		fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	return accesslog_attach(log, fd);
}

int accesslog_dup(struct accesslog *log, const struct accesslog *from)
{
	*log = (struct accesslog){ .fd = -1 };
	if (from->fd < 0)
		return 0;

	int fd = fcntl(from->fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	return accesslog_attach(log, fd);
}

void accesslog_close(struct accesslog *log)
{
	accesslog_flush(log);
	if (log->fd >= 0)
		close(log->fd);
	buf_free(&log->pending);
	log->fd = -1;
}
