/* SPDX-License-Identifier: Apache-2.0 */
/* sluiced: the sluice AI gateway daemon. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "config/config.h"
#include "core/log.h"
#include "proxy/gateway.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

static void usage(FILE *to)
{
	fprintf(to,
		"usage: sluiced -c FILE [--check]\n"
		"\n"
		"  -c, --config FILE   configuration file (YAML)\n"
		"      --check         validate the configuration and exit:\n"
		"                      0 when valid, 1 with file:line: key: reason\n"
		"      --reset-maps    remove pinned BPF maps of another layout version\n"
		"                      (their counters and quotas are lost)\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting and drain in-flight requests;\n"
		"SIGHUP (or POST /admin/reload on the admin listener, or sluicectl reload)\n"
		"reloads backends, routes, timeouts, limits, tenants, keys, the admin token,\n"
		"the deny list and certificates; requests in flight finish on the old config.\n"
		"Only listen, admin.listen and workers need a restart.\n");
}

/* Ten thousand keep-alive clients need more descriptors than the default. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Where /metrics is, or that it is not served at all. */
static void log_admin(const struct sluice_config *cfg)
{
	const struct admin_cfg *a = &cfg->admin;
	if (!a->enabled) {
		log_info("admin listener off (no admin: section): /metrics is not served");
		return;
	}
	log_info("admin listener on http://%s: /metrics, /admin/reload; %s", a->listen,
		 a->token ? "admin.token required" : "no token");
	if (!a->token && !is_loopback(&a->listen_addr))
		log_warn("admin.listen %s is not a loopback address and admin.token is not set: "
			 "whoever reaches it reads every tenant's metrics and can reload", a->listen);
}

static void log_startup(const struct sluice_config *cfg)
{
	log_info("sluiced %s listening on %s://%s with %u workers", SLUICE_VERSION,
		 cfg->tls.enabled ? "https" : "http", cfg->listen, cfg->workers);
	log_admin(cfg);
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *be = &cfg->backends[i];
		log_info("backend %s at %s serves %zu model%s%s", be->name, be->url, be->nmodels,
			 be->nmodels == 1 ? "" : "s", be->any_model ? " (any model)" : "");
	}
}

/* Signals are taken by this thread alone, with sigwait: the workers block
 * them all and never see one. */
static int serve(struct sluice_config *cfg, bool reset_maps)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	struct gateway *gw;
	int err = gateway_new(cfg, reset_maps, &gw);
	if (err)
		return 1;
	if (gateway_start(gw)) {
		gateway_drain(gw);
		gateway_wait(gw);
		gateway_free(gw);
		return 1;
	}
	log_startup(cfg);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			gateway_reload(gw, cfg->path);
	}
	log_info("draining: no new connections, finishing requests in flight (up to %u ms)",
		 cfg->drain_ms);
	gateway_drain(gw);
	int rc = gateway_wait(gw);
	gateway_free(gw);
	log_info("stopped");
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "reset-maps", no_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	int check = 0, reset_maps = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'R': reset_maps = 1; break;
		case 'V': printf("sluiced %s\n", SLUICE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind < argc) {
		usage(stderr);
		return 2;
	}
	struct sluice_config *cfg;
	struct config_error cerr;
	if (config_load(path, &cfg, &cerr)) {
		fprintf(stderr, "%s\n", cerr.text);
		return 1;
	}
	if (check) {
		printf("%s: ok\n", path);
		config_free(cfg);
		return 0;
	}
	enum log_level level = LOG_INFO;
	log_level_parse(cfg->log_level, &level);
	log_init("sluiced", level);
	raise_fd_limit();
	int rc = serve(cfg, reset_maps);
	config_free(cfg);
	return rc;
}
