/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwks_fetch_url: one blocking HTTP/1.1 GET for a JWKS document, for the
 * daemon's key refresh thread.  Everything it waits on (name resolution,
 * connect, TLS handshake, request, response) shares one deadline, and every
 * wait is a poll bounded by what is left of it, so a silent or slow server
 * cannot hold the refresh thread longer than the timeout.
 */
#include "auth/jwks.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/errtext.h"
#include "http/http1.h"

#define HEAD_MAX  16384		/* response head */
#define READ_STEP 16384		/* bytes asked of each read */
#define HOST_MAX  255
#define TARGET_MAX 2048

struct url {
	bool tls;
	bool host_is_ip;
	char host[HOST_MAX + 1];	/* without IPv6 brackets */
	char port[6];
	char authority[HOST_MAX + 9];	/* Host header: as written in the URL */
	char path[TARGET_MAX + 1];	/* origin-form target: path and query */
};

/* The connection: a socket, TLS on it for https. */
struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	uint64_t deadline_ns;
};

/* ---- URL ------------------------------------------------------------------ */

static int copy_span(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

/* host[:port] or [v6][:port] of an authority without userinfo. */
static int parse_authority(const char *p, size_t n, struct url *u)
{
	const char *colon, *host = p;
	size_t hlen;
	char *end;
	long port;

	if (n == 0 || memchr(p, '@', n) || copy_span(u->authority, sizeof(u->authority), p, n))
		return -EINVAL;
	if (*p == '[') {
		const char *close = memchr(p, ']', n);

		if (!close)
			return -EINVAL;
		host = p + 1;
		hlen = (size_t)(close - host);
		colon = close + 1 < p + n ? close + 1 : NULL;
		if (colon && *colon != ':')
			return -EINVAL;
	} else {
		colon = memchr(p, ':', n);
		hlen = colon ? (size_t)(colon - p) : n;
	}
	if (hlen == 0 || copy_span(u->host, sizeof(u->host), host, hlen))
		return -EINVAL;
	if (!colon) {
		strcpy(u->port, u->tls ? "443" : "80");
		return 0;
	}
	if (copy_span(u->port, sizeof(u->port), colon + 1, (size_t)(p + n - colon - 1)) ||
	    u->port[0] == '\0' || strspn(u->port, "0123456789") != strlen(u->port))
		return -EINVAL;
	port = strtol(u->port, &end, 10);
	return port >= 1 && port <= 65535 ? 0 : -EINVAL;
}

/* The target: path and query (the fragment is the client's), "/" when
 * empty; no byte that would break the request line. */
static int parse_target(const char *p, struct url *u)
{
	size_t n = strcspn(p, "#");

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
			return -EINVAL;
	if (n == 0 || *p != '/') {
		if (n + 1 >= sizeof(u->path))
			return -EINVAL;
		u->path[0] = '/';
		memcpy(u->path + 1, p, n);
		u->path[n + 1] = '\0';
		return 0;
	}
	return copy_span(u->path, sizeof(u->path), p, n) ? -EINVAL : 0;
}

static int parse_url(const char *s, struct url *u)
{
	unsigned char addr[16];
	size_t alen;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(s, "https://", 8) == 0) {
		u->tls = true;
		s += 8;
	} else if (strncasecmp(s, "http://", 7) == 0) {
		s += 7;
	} else {
		return -EINVAL;
	}
	alen = strcspn(s, "/?#");
	if (parse_authority(s, alen, u) || parse_target(s + alen, u))
		return -EINVAL;
	u->host_is_ip = inet_pton(AF_INET, u->host, addr) == 1 ||
			inet_pton(AF_INET6, u->host, addr) == 1;
	return 0;
}

/* ---- deadline ------------------------------------------------------------- */

/* Milliseconds left before the deadline, for poll(); 0 once it passed. */
static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = clock_mono_ns();

	if (now >= deadline_ns)
		return 0;
	/* Round up so a wait never ends just before the deadline and spins. */
	return (int)((deadline_ns - now + 999999) / 1000000);
}

/* Wait for events on fd until the deadline: 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int ms = ms_left(deadline_ns);
		int r;

		if (ms == 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- name resolution ------------------------------------------------------ */

/*
 * getaddrinfo cannot be given a timeout, so a name is resolved on a helper
 * thread while the caller waits on a condition variable until its deadline.
 * The job is shared and reference counted: if the caller gives up, the
 * helper finishes alone and frees the job.
 */
struct resolve_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	int rc;
	struct addrinfo *res;
	char host[HOST_MAX + 1];
	char port[6];
};

static void job_put(struct resolve_job *job)
{
	bool last;

	pthread_mutex_lock(&job->mu);
	last = --job->refs == 0;
	pthread_mutex_unlock(&job->mu);
	if (!last)
		return;
	if (job->res)
		freeaddrinfo(job->res);
	pthread_cond_destroy(&job->cv);
	pthread_mutex_destroy(&job->mu);
	free(job);
}

static void *resolve_thread(void *arg)
{
	struct resolve_job *job = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(job->host, job->port, &hints, &res);

	pthread_mutex_lock(&job->mu);
	job->rc = rc;
	job->res = res;
	job->done = true;
	pthread_cond_signal(&job->cv);
	pthread_mutex_unlock(&job->mu);
	job_put(job);
	return NULL;
}

static struct resolve_job *job_new(const struct url *u)
{
	struct resolve_job *job = calloc(1, sizeof(*job));
	pthread_condattr_t ca;

	if (!job)
		return NULL;
	pthread_mutex_init(&job->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&job->cv, &ca);
	pthread_condattr_destroy(&ca);
	job->refs = 2;		/* the caller and the helper */
	strcpy(job->host, u->host);
	strcpy(job->port, u->port);
	return job;
}

/* Wait for the helper until the deadline; take its result if it is done. */
static int job_wait(struct resolve_job *job, uint64_t deadline_ns, struct addrinfo **res,
		    char *err, size_t errcap)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
			       .tv_nsec = (long)(deadline_ns % 1000000000u) };
	int rc = 0;

	pthread_mutex_lock(&job->mu);
	while (!job->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&job->cv, &job->mu, &ts);
	if (!job->done)
		rc = errtext(err, errcap, -ETIMEDOUT, "resolving %s: timed out", job->host);
	else if (job->rc)
		rc = errtext(err, errcap, -EHOSTUNREACH, "resolving %s: %s", job->host,
			  gai_strerror(job->rc));
	else
		rc = 0;
	if (job->done && job->rc == 0) {
		*res = job->res;
		job->res = NULL;
	}
	pthread_mutex_unlock(&job->mu);
	return rc;
}

static int resolve(const struct url *u, uint64_t deadline_ns, struct addrinfo **res,
		   char *err, size_t errcap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	pthread_attr_t attr;
	struct resolve_job *job;
	pthread_t tid;
	int rc;

	*res = NULL;
	if (u->host_is_ip)
		return getaddrinfo(u->host, u->port, &hints, res) == 0 ? 0 :
			errtext(err, errcap, -EINVAL, "bad address %s", u->host);
	if (!(job = job_new(u)))
		return errtext(err, errcap, -ENOMEM, "out of memory");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, resolve_thread, job);
	pthread_attr_destroy(&attr);
	if (rc) {
		job->refs = 1;
		job_put(job);
		return errtext(err, errcap, -rc, "resolving %s: cannot start a thread", u->host);
	}
	rc = job_wait(job, deadline_ns, res, err, errcap);
	job_put(job);
	return rc;
}

/* ---- connection ----------------------------------------------------------- */

static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	socklen_t len = sizeof(int);
	int rc = 0, soerr = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			rc = -errno;
		else if (!(rc = wait_fd(fd, POLLOUT, deadline_ns)) &&
			 getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr)
			rc = -soerr;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

/* Try each address in turn until one connects or time runs out. */
static int connect_any(const struct url *u, uint64_t deadline_ns, char *err, size_t errcap)
{
	struct addrinfo *res, *ai;
	int rc = resolve(u, deadline_ns, &res, err, errcap);

	if (rc)
		return rc;
	rc = -EHOSTUNREACH;
	for (ai = res; ai && rc != -ETIMEDOUT; ai = ai->ai_next) {
		rc = connect_one(ai, deadline_ns);
		if (rc >= 0)
			break;
	}
	freeaddrinfo(res);
	if (rc < 0)
		return errtext(err, errcap, rc, "connecting to %s port %s: %s", u->host, u->port,
			    rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
	return rc;
}

/* Why the last TLS call failed, into err. */
static int tls_fail(struct conn *c, char *err, size_t errcap, const char *what)
{
	unsigned long e = ERR_peek_error();
	long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	char why[160];

	if (vr != X509_V_OK)
		snprintf(why, sizeof(why), "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (e)
		ERR_error_string_n(e, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "connection closed");
	ERR_clear_error();
	return errtext(err, errcap, -EPROTO, "%s: %s", what, why);
}

/* Wait for what an SSL call asked for: 0 to retry, < 0 to stop. */
static int tls_wait(struct conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->fd, POLLIN, c->deadline_ns);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->fd, POLLOUT, c->deadline_ns);
	default:
		return -EPROTO;
	}
}

static int tls_ctx_new(struct conn *c, const char *ca_file, char *err, size_t errcap)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx)
		return tls_fail(c, err, errcap, "TLS context");
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	/* A server that closes without close_notify ends a close-delimited
	 * body; a truncated document then fails to parse as JSON. */
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (ca_file && SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1)
		return tls_fail(c, err, errcap, ca_file);
	if (!ca_file && SSL_CTX_set_default_verify_paths(c->ctx) != 1)
		return tls_fail(c, err, errcap, "system trust store");
	return 0;
}

/* Certificate name check against the URL host: DNS name, or IP address
 * for a literal (which gets no SNI, RFC 6066 section 3). */
static int tls_set_peer(struct conn *c, const struct url *u)
{
	static const unsigned char alpn[] = "\x08http/1.1";

	if (SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1) != 0)
		return -1;
	if (u->host_is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) == 1 ? 0 : -1;
	return SSL_set_tlsext_host_name(c->ssl, u->host) == 1 &&
	       SSL_set1_host(c->ssl, u->host) == 1 ? 0 : -1;
}

static int tls_handshake(struct conn *c, const struct url *u, const char *ca_file,
			 char *err, size_t errcap)
{
	int rc = tls_ctx_new(c, ca_file, err, errcap);

	if (rc)
		return rc;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || tls_set_peer(c, u))
		return tls_fail(c, err, errcap, "TLS setup");
	for (;;) {
		int ret = SSL_connect(c->ssl);

		if (ret == 1)
			return 0;
		rc = tls_wait(c, ret);
		if (rc == -ETIMEDOUT)
			return errtext(err, errcap, rc, "TLS handshake with %s: timed out", u->host);
		if (rc)
			return tls_fail(c, err, errcap, "TLS handshake");
	}
}

static int conn_write_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		int rc;

		if (c->ssl) {
			size_t done = 0;
			int ret = SSL_write_ex(c->ssl, p, n, &done);

			if (ret == 1) {
				p += done;
				n -= done;
				continue;
			}
			if ((rc = tls_wait(c, ret)))
				return rc;
			continue;
		}
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_fd(c->fd, POLLOUT, c->deadline_ns)))
				return rc;
		} else {
			return w < 0 ? -errno : -EPIPE;
		}
	}
	return 0;
}

/* Read some bytes: the count, 0 at the end of the stream, or < 0. */
static ssize_t conn_read(struct conn *c, char *p, size_t cap)
{
	for (;;) {
		ssize_t r;
		int rc;

		if (c->ssl) {
			size_t got = 0;
			int ret = SSL_read_ex(c->ssl, p, cap, &got);

			if (ret == 1)
				return (ssize_t)got;
			if (SSL_get_error(c->ssl, ret) == SSL_ERROR_ZERO_RETURN)
				return 0;
			if ((rc = tls_wait(c, ret)))
				return rc;
			continue;
		}
		r = recv(c->fd, p, cap, 0);
		if (r >= 0)
			return r;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((rc = wait_fd(c->fd, POLLIN, c->deadline_ns)))
			return rc;
	}
}

static void conn_close(struct conn *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
}

/* ---- HTTP ----------------------------------------------------------------- */

static int send_request(struct conn *c, const struct url *u, char *err, size_t errcap)
{
	char req[TARGET_MAX + HOST_MAX + 256];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-jwks\r\n"
			 "Accept: application/json, application/jwk-set+json\r\n"
			 "Connection: close\r\n\r\n", u->path, u->authority);
	int rc = conn_write_all(c, req, (size_t)n);

	if (rc)
		return errtext(err, errcap, rc, "sending the request: %s",
			    rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
	return 0;
}

/* Append what the peer sends next onto b: bytes read, 0 at EOF, or < 0. */
static ssize_t read_more(struct conn *c, struct buf *b)
{
	ssize_t r;

	if (buf_reserve(b, READ_STEP))
		return -ENOMEM;
	r = conn_read(c, buf_tail(b), READ_STEP);
	if (r > 0)
		b->len += (size_t)r;
	return r;
}

static int read_error(ssize_t r, char *err, size_t errcap, const char *what)
{
	if (r == -ETIMEDOUT)
		return errtext(err, errcap, -ETIMEDOUT, "%s: timed out", what);
	if (r == 0)
		return errtext(err, errcap, -EPROTO, "%s: the server closed the connection", what);
	return errtext(err, errcap, (int)r, "%s: %s", what, strerror((int)-r));
}

/* Read the final (non-1xx) response head; on return it is consumed from b
 * and the bytes that followed it are the start of the body. */
static int read_head(struct conn *c, struct buf *b, struct http_response *resp,
		     char *err, size_t errcap)
{
	for (;;) {
		int n = http_parse_response(buf_head(b), buf_used(b), HEAD_MAX, resp);

		if (n > 0) {
			buf_consume(b, (size_t)n);
			if (resp->status >= 100 && resp->status < 200)
				continue;
			return 0;
		}
		if (n < 0)
			return errtext(err, errcap, -EPROTO, "the response head is malformed or too large");
		ssize_t r = read_more(c, b);
		if (r <= 0)
			return read_error(r, err, errcap, "reading the response head");
	}
}

static int check_status(const struct http_response *resp, char *err, size_t errcap)
{
	const struct http_header *ce;

	if (resp->status != 200)
		return errtext(err, errcap, -EBADMSG, "HTTP status %d%s", resp->status,
			    resp->status >= 300 && resp->status < 400 ? " (redirects are not followed)" : "");
	ce = http_find_header(resp->headers, resp->nheaders, "Content-Encoding");
	if (ce && !str_case_eq_cstr(ce->value, "identity"))
		return errtext(err, errcap, -EPROTO, "the body has a Content-Encoding");
	return 0;
}

static int too_big(char *err, size_t errcap)
{
	return errtext(err, errcap, -E2BIG, "the body is larger than %u bytes", JWKS_MAX_DOC);
}

/* Body of Content-Length bytes: at the front of b when 0 is returned. */
static int read_sized_body(struct conn *c, struct buf *b, uint64_t length,
			   char *err, size_t errcap)
{
	if (length > JWKS_MAX_DOC)
		return too_big(err, errcap);
	while (buf_used(b) < length) {
		ssize_t r = read_more(c, b);

		if (r <= 0)
			return read_error(r, err, errcap, "reading the body");
	}
	b->len = b->off + (size_t)length;	/* bytes after the body: ignored */
	return 0;
}

/* Body until the server closes. */
static int read_close_body(struct conn *c, struct buf *b, char *err, size_t errcap)
{
	for (;;) {
		if (buf_used(b) > JWKS_MAX_DOC)
			return too_big(err, errcap);
		ssize_t r = read_more(c, b);

		if (r == 0)
			return 0;
		if (r < 0)
			return read_error(r, err, errcap, "reading the body");
	}
}

/*
 * Chunked body, decoded as it arrives: b holds the decoded bytes
 * [0, body) at its head, then raw bytes not decoded yet.  Decoding
 * right after every read keeps the raw part under one read's size.
 */
static int read_chunked_body(struct conn *c, struct buf *b, char *err, size_t errcap)
{
	struct http_chunked ch;
	size_t body = 0;

	http_chunked_init(&ch);
	for (;;) {
		size_t raw = buf_used(b) - body, decoded = raw, consumed = 0;
		char *p = buf_head(b) + body;
		int rc = http_chunked_decode(&ch, p, &decoded, &consumed, JWKS_MAX_DOC);

		if (rc == HTTP_ERR_TOO_LARGE)
			return too_big(err, errcap);
		if (rc < 0)
			return errtext(err, errcap, -EPROTO, "the chunked body is malformed");
		body += decoded;
		b->len = b->off + body;	/* what follows the last chunk: ignored */
		if (rc == 1)
			return 0;
		ssize_t r = read_more(c, b);
		if (r <= 0)
			return read_error(r, err, errcap, "reading the chunked body");
	}
}

static int fetch_body(struct conn *c, struct buf *b, char *err, size_t errcap)
{
	struct http_response resp;
	int rc = read_head(c, b, &resp, err, errcap);

	if (rc || (rc = check_status(&resp, err, errcap)))
		return rc;
	if (resp.chunked)
		return read_chunked_body(c, b, err, errcap);
	if (resp.content_length >= 0)
		return read_sized_body(c, b, (uint64_t)resp.content_length, err, errcap);
	return read_close_body(c, b, err, errcap);
}

/* ---- entry point ---------------------------------------------------------- */

/*
 * SIGPIPE: a TLS write goes through write(2), which raises it if the peer
 * has gone.  Block it for the call and drop one raised meanwhile, so the
 * function is safe in a process that does not ignore it.
 */
static void sigpipe_block(sigset_t *old, bool *was_pending)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pending);
	*was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void sigpipe_restore(const sigset_t *old, bool was_pending)
{
	struct timespec zero = { 0, 0 };
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pending);
	if (!was_pending && sigismember(&pending, SIGPIPE))
		sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int fetch(const struct url *u, uint64_t deadline_ns, const char *ca_file,
		 struct buf *b, char *err, size_t errcap)
{
	struct conn c = { .fd = -1, .deadline_ns = deadline_ns };
	int rc;

	c.fd = connect_any(u, deadline_ns, err, errcap);
	if (c.fd < 0)
		return c.fd;
	rc = u->tls ? tls_handshake(&c, u, ca_file, err, errcap) : 0;
	if (rc == 0)
		rc = send_request(&c, u, err, errcap);
	if (rc == 0)
		rc = fetch_body(&c, b, err, errcap);
	conn_close(&c);
	return rc;
}

int jwks_fetch_url(const char *url, unsigned timeout_ms, const char *ca_file,
		   struct jwks **out, char *err, size_t errcap)
{
	uint64_t deadline_ns = clock_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	struct buf b = { 0 };
	struct url u;
	sigset_t old;
	bool was_pending;
	int rc;

	*out = NULL;
	if (parse_url(url, &u))
		return errtext(err, errcap, -EINVAL, "not an http:// or https:// URL with a host");
	sigpipe_block(&old, &was_pending);
	rc = fetch(&u, deadline_ns, ca_file, &b, err, errcap);
	sigpipe_restore(&old, was_pending);
	if (rc == 0)
		rc = jwks_parse(buf_head(&b), buf_used(&b), out, err, errcap);
	buf_free(&b);
	return rc;
}
