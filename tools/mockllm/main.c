/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mockllm entry point: options, the listening sockets (one per worker, all
 * on the same port through SO_REUSEPORT so the kernel spreads connections),
 * the worker threads, and a clean exit on SIGTERM or SIGINT.
 */
#include "mockllm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#define THREADS_MAX 256
#define LISTEN_BACKLOG 4096

static const char usage_text[] =
	"usage: mockllm [options]\n"
	"  --listen HOST:PORT  address to listen on (default 127.0.0.1:9000; port 0 picks one)\n"
	"  --threads N         worker threads (default 1)\n"
	"  --ttft-ms N         delay before the first token (default 0)\n"
	"  --tps N             tokens per second, 0 = as fast as possible (default 0)\n"
	"  --tokens N          completion tokens per response (default 16)\n"
	"  --verbose           log one line per request to stderr\n"
	"  --quiet             accepted for compatibility; quiet is the default\n"
	"  --help              this text\n"
	"per-request headers: x-mock-ttft-ms, x-mock-tps, x-mock-tokens, x-mock-status,\n"
	"  x-mock-fault (reset, reset-mid-stream, stall, stall-mid-stream, garbage, close,\n"
	"  error-event), POST /mock/behave {status, fault, ttft_ms, count} for the next N,\n"
	"  x-mock-cached-tokens, x-mock-reasoning-tokens,\n"
	"  x-mock-record-headers (GET /mock/stats shows this request's headers)\n";

struct listen_addr {
	char host[256];		/* for getaddrinfo: brackets removed */
	char shown[258];	/* for the banner: as given */
	char port[8];
};

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces). */
static int parse_listen(const char *arg, struct listen_addr *la)
{
	const char *colon = strrchr(arg, ':');
	uint32_t port;
	size_t hlen;

	if (!colon || parse_u32(colon + 1, 65535, &port))
		return -EINVAL;
	hlen = (size_t)(colon - arg);
	if (hlen >= sizeof(la->host))
		return -EINVAL;
	memcpy(la->shown, arg, hlen);
	la->shown[hlen] = '\0';
	if (hlen >= 2 && arg[0] == '[' && arg[hlen - 1] == ']') {
		arg++;
		hlen -= 2;
	}
	memcpy(la->host, arg, hlen);
	la->host[hlen] = '\0';
	snprintf(la->port, sizeof(la->port), "%" PRIu32, port);
	return 0;
}

enum { OPT_LISTEN = 256, OPT_THREADS, OPT_TTFT, OPT_TPS, OPT_TOKENS, OPT_VERBOSE, OPT_QUIET, OPT_HELP };

static const struct option long_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "ttft-ms", required_argument, NULL, OPT_TTFT },
	{ "tps", required_argument, NULL, OPT_TPS },
	{ "tokens", required_argument, NULL, OPT_TOKENS },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_option(int opt, const char *arg, struct mock_config *cfg, struct listen_addr *la)
{
	uint32_t threads;

	switch (opt) {
	case OPT_LISTEN:
		return parse_listen(arg, la);
	case OPT_THREADS:
		if (parse_u32(arg, THREADS_MAX, &threads) || threads == 0)
			return -EINVAL;
		cfg->threads = (int)threads;
		return 0;
	case OPT_TTFT:
		return parse_u32(arg, 600000, &cfg->ttft_ms);
	case OPT_TPS:
		return parse_u32(arg, 1000000, &cfg->tps);
	case OPT_TOKENS:
		return parse_u32(arg, MOCK_MAX_TOKENS, &cfg->tokens);
	case OPT_VERBOSE:
		cfg->verbose = true;
		return 0;
	case OPT_QUIET:
		return 0;
	default:
		return -EINVAL;
	}
}

/* 0 to run, 1 when --help was asked for, -EINVAL on a bad command line. */
static int parse_args(int argc, char **argv, struct mock_config *cfg, struct listen_addr *la)
{
	int opt;

	while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		if (opt == OPT_HELP)
			return 1;
		if (parse_option(opt, optarg, cfg, la)) {
			if (opt != '?')
				fprintf(stderr, "mockllm: invalid value for --%s: %s\n",
					long_options[opt - OPT_LISTEN].name, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mockllm: unexpected argument: %s\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int listen_on(const struct sockaddr *sa, socklen_t len)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, sa, len) || listen(fd, LISTEN_BACKLOG)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/*
 * One socket per worker.  The first binds the requested port (maybe 0);
 * the others bind the port it got, so "port 0" still means one port.
 */
static int open_listeners(const struct listen_addr *la, int n, int *fds, uint16_t *port)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = getaddrinfo(la->host[0] ? la->host : NULL, la->port, &hints, &ai);

	if (rc) {
		fprintf(stderr, "mockllm: %s: %s\n", la->shown, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
	len = ai->ai_addrlen;
	freeaddrinfo(ai);
	for (int i = 0; i < n; i++) {
		fds[i] = listen_on((struct sockaddr *)&ss, len);
		if (fds[i] < 0) {
			fprintf(stderr, "mockllm: listen on %s:%s: %s\n", la->shown, la->port,
				strerror(-fds[i]));
			while (i--)
				close(fds[i]);
			return -EADDRNOTAVAIL;
		}
		if (i == 0) {
			socklen_t slen = sizeof(ss);
			getsockname(fds[0], (struct sockaddr *)&ss, &slen);
			*port = get_port(&ss);
			set_port(&ss, *port);
		}
	}
	return 0;
}

/* Benchmarks open many connections: take all the descriptors we may. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct server {
	int nworkers;
	int listen_fds[THREADS_MAX];
	int wake_fd;
	struct worker *workers;
};

static int start_workers(struct server *s, const struct mock_config *cfg)
{
	s->workers = calloc((size_t)cfg->threads, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (int i = 0; i < cfg->threads; i++) {
		struct worker *w = &s->workers[i];
		int err = worker_init(w, i, cfg, s->listen_fds[i], s->wake_fd);
		if (!err)
			err = -pthread_create(&w->thread, NULL, worker_main, w);
		if (err) {
			worker_destroy(w);
			return err;
		}
		s->nworkers++;
	}
	return 0;
}

/* Every worker watches the one eventfd: a write stops them all. */
static void wake_workers(int wake_fd)
{
	uint64_t one = 1;

	if (write(wake_fd, &one, sizeof(one)) < 0)
		return;	/* the counter is already non-zero: they are waking */
}

static void join_workers(struct server *s)
{
	for (int i = 0; i < s->nworkers; i++) {
		pthread_join(s->workers[i].thread, NULL);
		worker_destroy(&s->workers[i]);
	}
	free(s->workers);
}

static int signal_wake_fd = -1;

static void on_stop_signal(int sig)
{
	int saved_errno = errno;

	(void)sig;
	wake_workers(signal_wake_fd);
	errno = saved_errno;
}

/*
 * SIGTERM and SIGINT stop the workers through the eventfd.  A handler, not
 * a blocked mask and sigwait(): threads we do not create (the sanitizers
 * start some) would not inherit the mask, and the default action there
 * would kill the process with a non-zero status.
 */
static int install_signal_handlers(int wake_fd)
{
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESTART };

	signal_wake_fd = wake_fd;
	sigemptyset(&sa.sa_mask);
	signal(SIGPIPE, SIG_IGN);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	struct mock_config cfg = { .threads = 1, .tokens = 16 };
	struct listen_addr la = { .host = "127.0.0.1", .shown = "127.0.0.1", .port = "9000" };
	struct server s = { .wake_fd = -1 };
	uint16_t port = 0;
	int rc = parse_args(argc, argv, &cfg, &la);

	if (rc) {
		fputs(usage_text, rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	log_init("mockllm", cfg.verbose ? LOG_INFO : LOG_WARN);
	raise_fd_limit();
	if (open_listeners(&la, cfg.threads, s.listen_fds, &port))
		return 1;
	s.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = s.wake_fd < 0 ? -errno : install_signal_handlers(s.wake_fd);
	if (!rc)
		rc = start_workers(&s, &cfg);
	if (rc) {
		fprintf(stderr, "mockllm: cannot start: %s\n", strerror(-rc));
		if (s.wake_fd >= 0)
			wake_workers(s.wake_fd);
	} else {
		fprintf(stderr, "mockllm: listening on %s:%u\n", la.shown, port);
	}
	/* Workers return once a signal (or a failed start) wakes them. */
	join_workers(&s);
	for (int i = 0; i < cfg.threads; i++)
		close(s.listen_fds[i]);
	if (s.wake_fd >= 0)
		close(s.wake_fd);
	return rc ? 1 : 0;
}
