/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <unistd.h>

#include "core/log.h"
#include "kern/kern.h"
#include "quota/tenants.h"
#include "proxy/proxy.h"
#include "tls/tls.h"
#include "tls/tls_server.h"

/* TLS termination: the server context, and one line on whether the kernel
 * can take over record crypto (kTLS). */
static int tls_listener_new(struct gateway *gw)
{
	char err[256];
	int r = tls_server_ctx_new(&gw->cfg->tls, &gw->tls_server, err, sizeof(err));
	if (r) {
		log_error("tls: %s", err);
		return r;
	}
	bool ktls = tls_kernel_has_ktls();
	__atomic_store_n(&gw->stats->tls_enabled, 1u, __ATOMIC_RELAXED);
	__atomic_store_n(&gw->stats->ktls_available, ktls ? 1u : 0u, __ATOMIC_RELAXED);
	if (!gw->cfg->tls.ktls)
		log_info("tls: on; kernel TLS off (tls.ktls: false)");
	else if (ktls)
		log_info("tls: on; kernel TLS available: connections whose cipher it supports use it");
	else
		log_info("tls: on; kernel TLS unavailable (no tls module in this kernel): userspace TLS");
	return 0;
}

/* Workers read the names while a reload may rewrite them: each entry is
 * one pointer, stored and loaded atomically. */
static void name_tenants(struct gateway *gw, const struct sluice_config *cfg)
{
	const char *names[SLUICE_MAX_TENANTS] = { [SLUICE_TENANT_ANON] = "anonymous" };
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (cfg->tenants[i].id < SLUICE_MAX_TENANTS)
			names[cfg->tenants[i].id] = cfg->tenants[i].name;
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++)
		__atomic_store_n(&gw->tenant_names[id], names[id], __ATOMIC_RELEASE);
}

void gateway_tenant_names(struct gateway *gw, const char *names[SLUICE_MAX_TENANTS])
{
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++)
		names[id] = __atomic_load_n(&gw->tenant_names[id], __ATOMIC_ACQUIRE);
}

static uint16_t listen_port(const struct sluice_config *cfg)
{
	const struct sockaddr_storage *ss = &cfg->listen_addr;
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* Limits into the tenant state, and Redis for global mode.  The Redis
 * connections are opened lazily by the workers: a Redis that is down at
 * start-up is the configured on_error policy, not a failure. */
static int quotas_start(struct gateway *gw)
{
	const struct quota_cfg *q = &gw->cfg->quota;
	admit_clear_in_flight(gw);
	admit_apply_config(gw, gw->cfg);
	if (!q->redis)
		return 0;
	struct quota_global_cfg gcfg = {
		.url = q->redis_url, .fail_open = q->fail_open, .timeout_ms = q->redis_timeout_ms,
		.retry_ms = 1000, .lease_percent = q->lease_percent,
	};
	char err[256];
	int rc = quota_global_new(&gcfg, &gw->global, err, sizeof(err));
	if (rc) {
		log_error("quota.redis: %s", err);
		return rc;
	}
	log_info("quotas: global across nodes through redis at %s (fail %s when it is unreachable)",
		 quota_global_where(gw->global), q->fail_open ? "open" : "closed");
	return 0;
}

/*
 * Every tenant of cfg gets its slot by name in the tenant state the
 * daemon uses (the pinned map, or its own array), before anything reads
 * an id: limits, names, keys, the kernel maps.  What hung on a freed
 * slot (quota slots, learned sources) is dropped with it.
 */
static int assign_tenants(struct gateway *gw, struct sluice_config *cfg)
{
	uint32_t freed[SLUICE_MAX_TENANTS];
	size_t nfreed = 0;
	int err = tenants_assign(gw->tenants, cfg, freed, &nfreed);
	if (err)
		return err;
	for (size_t i = 0; i < nfreed; i++) {
		quota_slots_forget_tenant(gw->qslots.slots, freed[i]);
		if (gw->kern)
			kern_forget_tenant(gw->kern, freed[i]);
	}
	if (nfreed)
		log_info("tenants: %zu removed from the config; their state is dropped", nfreed);
	return 0;
}

/*
 * Load the kernel half and do what must precede the listeners: maps,
 * config, sockops (the daemon joins its cgroup so accepted sockets are
 * tagged).  Only a map layout mismatch stops the daemon; anything the
 * machine cannot do turns the kernel half off, said once.
 */
static int kernel_start(struct gateway *gw, struct sluice_config *cfg, bool reset_maps)
{
	struct kern_why why = { { 0 } };
	if (!cfg->kernel.enabled) {
		log_info("kernel features off: disabled in the config (kernel.enabled: false)");
		return 0;
	}
	int err = kern_open(cfg, reset_maps, &gw->kern, &why);
	if (err == -ESTALE) {
		log_error("%s", why.text);
		return err;
	}
	if (err) {
		log_warn("kernel features off (XDP, sockops, steering, shared maps): %s", why.text);
		return 0;
	}
	gw->tenants = kern_tenants(gw->kern);
	gw->qslots.slots = kern_quota_slots(gw->kern);
	if ((err = assign_tenants(gw, cfg)) ||
	    (err = kern_apply_config(gw->kern, cfg, listen_port(cfg), cfg->workers))) {
		log_warn("kernel features off: cannot write the config to the maps: %s",
			 strerror(-err));
		kern_close(gw->kern);
		gw->kern = NULL;
		gw->tenants = gw->local_tenants;
		gw->qslots.slots = gw->local_slots;
		return 0;
	}
	gw->stats = kern_daemon_stats(gw->kern);
	if (kern_attach_sockops(gw->kern, &why))
		log_warn("sockops off: %s", why.text);
	return 0;
}

/* After the listeners exist: steering over them, and XDP. */
static void kernel_attach(struct gateway *gw)
{
	struct kern_why why = { { 0 } };
	int fds[SLUICE_MAX_WORKERS];
	unsigned n = gw->nworkers < SLUICE_MAX_WORKERS ? gw->nworkers : SLUICE_MAX_WORKERS;
	for (unsigned i = 0; i < n; i++)
		fds[i] = gw->workers[i].listen_fd;
	if (kern_attach_steer(gw->kern, fds, n, &why))
		log_warn("steering off: %s", why.text);
	if (kern_attach_xdp(gw->kern, &why))
		log_warn("%s", why.text);
	char line[512];
	kern_describe(gw->kern, line, sizeof(line));
	log_info("%s", line);
}

int gateway_new(struct sluice_config *cfg, bool reset_maps, struct gateway **out)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return -ENOMEM;
	gw->cfg = cfg;
	pthread_mutex_init(&gw->qslots.insert, NULL);
	pthread_mutex_init(&gw->reload_lock, NULL);
	char why[512];
	int err = snap_new(gw, cfg, false, cfg, cfg->workers, 1, &gw->snap, why, sizeof(why));
	if (err)
		log_error("%s", why);
	if (!err) {
		gw->local_tenants = calloc(SLUICE_MAX_TENANTS, sizeof(*gw->local_tenants));
		gw->local_slots = calloc(SLUICE_MAX_QUOTA_SLOTS, sizeof(*gw->local_slots));
		gw->tenants = gw->local_tenants;
		gw->qslots.slots = gw->local_slots;
		gw->stats = &gw->local_stats;
		err = gw->local_tenants && gw->local_slots ? kernel_start(gw, cfg, reset_maps)
							   : -ENOMEM;
	}
	/* Without the kernel half the daemon's own array has the slots. */
	if (!err && !gw->kern)
		err = assign_tenants(gw, cfg);
	if (!err)
		name_tenants(gw, cfg);
	if (!err)
		err = quotas_start(gw);
	if (!err)
		err = auth_start(&gw->auth, cfg, cfg->workers, admit_tick, gw);
	if (!err && cfg->tls.enabled)
		err = tls_listener_new(gw);
	if (!err) {
		gw->workers = calloc(cfg->workers, sizeof(*gw->workers));
		gw->metrics = calloc(cfg->workers, sizeof(*gw->metrics));
		if (!gw->workers || !gw->metrics)
			err = -ENOMEM;
	}
	/* Workers are set up here, in order, so a listener that cannot bind
	 * stops the daemon before anything serves. */
	for (unsigned i = 0; !err && i < cfg->workers; i++) {
		err = worker_init(&gw->workers[i], gw, i);
		gw->nworkers = i + 1;
	}
	if (err) {
		gateway_free(gw);
		return err;
	}
	if (gw->kern)
		kernel_attach(gw);
	*out = gw;
	return 0;
}

static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static bool targets_differ(const struct sluice_config *a, const struct route_target_cfg *x,
			   const struct sluice_config *b, const struct route_target_cfg *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (str_differs(a->backends[x[i].backend].name, b->backends[y[i].backend].name) ||
		    str_differs(x[i].model, y[i].model) || x[i].weight != y[i].weight)
			return true;
	return false;
}

static bool routes_differ(const struct sluice_config *a, const struct sluice_config *b)
{
	if (a->nroutes != b->nroutes)
		return true;
	for (size_t i = 0; i < a->nroutes; i++) {
		const struct route_cfg *x = &a->routes[i], *y = &b->routes[i];
		if (str_differs(x->model, y->model) || x->ntargets != y->ntargets ||
		    x->nfallback != y->nfallback || x->balance != y->balance ||
		    x->sticky != y->sticky || str_differs(x->match_header, y->match_header) ||
		    str_differs(x->match_value, y->match_value) ||
		    str_differs(x->match_tenant, y->match_tenant) ||
		    targets_differ(a, x->targets, b, y->targets, x->ntargets) ||
		    targets_differ(a, x->fallback, b, y->fallback, x->nfallback))
			return true;
	}
	return false;
}

static bool backends_differ(const struct sluice_config *a, const struct sluice_config *b)
{
	if (a->nbackends != b->nbackends)
		return true;
	for (size_t i = 0; i < a->nbackends; i++) {
		const struct backend_cfg *x = &a->backends[i], *y = &b->backends[i];
		if (!snap_backend_conn_same(x, y) || x->nmodels != y->nmodels)
			return true;
		for (size_t m = 0; m < x->nmodels; m++)
			if (str_differs(x->models[m], y->models[m]))
				return true;
	}
	return false;
}

static bool tenants_differ(const struct sluice_config *a, const struct sluice_config *b)
{
	if (a->ntenants != b->ntenants)
		return true;
	for (size_t i = 0; i < a->ntenants; i++)
		if (str_differs(a->tenants[i].name, b->tenants[i].name) ||
		    a->tenants[i].id != b->tenants[i].id)
			return true;
	return false;
}

static bool limits_differ(const struct sluice_config *old, const struct sluice_config *next)
{
	return old->max_body_bytes != next->max_body_bytes ||
	       old->max_header_bytes != next->max_header_bytes ||
	       old->max_sse_line_bytes != next->max_sse_line_bytes ||
	       old->max_sse_event_bytes != next->max_sse_event_bytes ||
	       old->max_stream_bytes != next->max_stream_bytes ||
	       old->max_connections != next->max_connections;
}

static bool timeouts_differ(const struct sluice_config *old, const struct sluice_config *next)
{
	return old->client_header_ms != next->client_header_ms ||
	       old->client_body_ms != next->client_body_ms || old->keepalive_ms != next->keepalive_ms ||
	       old->upstream_connect_ms != next->upstream_connect_ms ||
	       old->upstream_first_byte_ms != next->upstream_first_byte_ms ||
	       old->upstream_idle_ms != next->upstream_idle_ms || old->drain_ms != next->drain_ms ||
	       old->stage_ms != next->stage_ms;
}

static bool kernel_attach_differs(const struct kernel_cfg *a, const struct kernel_cfg *b)
{
	if (a->enabled != b->enabled || str_differs(a->pin_root, b->pin_root) ||
	    str_differs(a->cgroup, b->cgroup) || a->xdp_mode != b->xdp_mode ||
	    a->n_xdp_interfaces != b->n_xdp_interfaces)
		return true;
	for (size_t i = 0; i < a->n_xdp_interfaces; i++)
		if (str_differs(a->xdp_interfaces[i], b->xdp_interfaces[i]))
			return true;
	return false;
}

/* A short list, "a, b, c", into out (which it may cut). */
static void list_add(char *out, size_t cap, const char *item)
{
	size_t len = strlen(out);
	snprintf(out + len, cap - len, "%s%s", len ? ", " : "", item);
}

/*
 * What a reload cannot apply: the sockets and threads made at start-up,
 * the kernel attach points and the Redis client.  They are compared with
 * the start-up config, said in the log, and kept.
 */
static void restart_only(const struct sluice_config *old, const struct sluice_config *next,
			 char *out, size_t cap)
{
	if (str_differs(old->listen, next->listen))
		list_add(out, cap, "listen");
	if (old->workers != next->workers)
		list_add(out, cap, "workers");
	if (old->admin.enabled != next->admin.enabled ||
	    str_differs(old->admin.listen, next->admin.listen))
		list_add(out, cap, "admin.listen");
	if (str_differs(old->access_log, next->access_log) || str_differs(old->log_level, next->log_level))
		list_add(out, cap, "access_log/log_level");
	if (kernel_attach_differs(&old->kernel, &next->kernel))
		list_add(out, cap, "kernel attach points");
	if (old->quota.redis != next->quota.redis ||
	    str_differs(old->quota.redis_url, next->quota.redis_url) ||
	    old->quota.fail_open != next->quota.fail_open ||
	    old->quota.redis_timeout_ms != next->quota.redis_timeout_ms ||
	    old->quota.lease_percent != next->quota.lease_percent)
		list_add(out, cap, "quota.redis");
}

/* What this reload changes for new requests. */
static void changes(const struct sluice_config *old, const struct sluice_config *next,
		    char *out, size_t cap)
{
	if (backends_differ(old, next))
		list_add(out, cap, "backends");
	if (routes_differ(old, next))
		list_add(out, cap, "routes");
	if (timeouts_differ(old, next))
		list_add(out, cap, "timeouts");
	if (limits_differ(old, next))
		list_add(out, cap, "limits");
	if (tenants_differ(old, next))
		list_add(out, cap, "tenants");
}

/*
 * New certificates (and TLS settings) for new connections.  A worker may be
 * opening a session on the old context right now, so the old one is kept
 * until exit instead of freed; sessions hold their own references anyway.
 */
static void reload_tls(struct gateway *gw, const struct sluice_config *next)
{
	if (!gw->tls_server || !next->tls.enabled) {
		if (!gw->tls_server != !next->tls.enabled)
			log_warn("reload: turning TLS on or off needs a restart; kept the running listener");
		return;
	}
	struct tls_server_ctx *fresh, **old;
	char err[256];
	if (tls_server_ctx_new(&next->tls, &fresh, err, sizeof(err))) {
		log_error("reload: tls: %s; kept the running certificates", err);
		return;
	}
	old = realloc(gw->old_tls, (gw->nold_tls + 1) * sizeof(*old));
	if (!old) {
		tls_server_ctx_free(fresh);
		log_error("reload: tls: out of memory");
		return;
	}
	gw->old_tls = old;
	gw->old_tls[gw->nold_tls++] = __atomic_exchange_n(&gw->tls_server, fresh, __ATOMIC_ACQ_REL);
	log_info("reload: tls: new connections use %s", next->tls.cert);
}

/* The outcome, for POST /admin/reload?wait=1 (admin.c) and the log. */
static void reload_outcome(struct gateway *gw, uint64_t asked, bool ok, const char *text)
{
	pthread_mutex_lock(&gw->reload_lock);
	gw->reload_ok = ok;
	snprintf(gw->reload_text, sizeof(gw->reload_text), "%s", text);
	__atomic_store_n(&gw->reload_done, asked, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&gw->reload_lock);
}

/*
 * Load the file again and publish it as the new snapshot.  A bad file, or
 * one whose TLS client settings cannot be loaded, keeps the running
 * snapshot.  Workers pick the new one up within a loop iteration; what is
 * in flight keeps the old one (snap.h).
 */
void gateway_reload(struct gateway *gw, const char *path)
{
	uint64_t asked = __atomic_load_n(&gw->reload_asked, __ATOMIC_ACQUIRE);
	struct sluice_config *next;
	struct config_error cerr;
	if (config_load(path, &next, &cerr)) {
		log_error("reload: %s; kept the running config", cerr.text);
		reload_outcome(gw, asked, false, cerr.text);
		return;
	}
	struct snap *cur = gw->snap, *fresh;
	char why[512];
	int err = snap_new(gw, next, true, gw->cfg, gw->nworkers, cur->gen + 1, &fresh, why,
			   sizeof(why));
	if (err) {
		log_error("reload: %s; kept the running config", why);
		reload_outcome(gw, asked, false, why);
		return;
	}
	if (assign_tenants(gw, next)) {
		snprintf(why, sizeof(why), "%s: tenants: no tenant slot left", path);
		log_error("reload: %s; kept the running config", why);
		snap_free(fresh);
		reload_outcome(gw, asked, false, why);
		return;
	}
	if (gw->kern) {
		err = kern_apply_config(gw->kern, next, listen_port(gw->cfg), gw->nworkers);
		if (err) {
			snprintf(why, sizeof(why), "%s: kernel: cannot write the kernel maps: %s",
				 path, strerror(-err));
			log_error("reload: %s; kept the running config", why);
			snap_free(fresh);
			reload_outcome(gw, asked, false, why);
			return;
		}
	}
	char changed[400] = "", restart[300] = "";
	changes(cur->cfg, next, changed, sizeof(changed));
	restart_only(gw->cfg, next, restart, sizeof(restart));
	reload_tls(gw, next);
	name_tenants(gw, next);
	admit_apply_config(gw, next);
	auth_reconfigure(&gw->auth, next);
	__atomic_store_n(&gw->snap, fresh, __ATOMIC_RELEASE);
	snap_unref(cur);
	if (restart[0])
		log_warn("reload: changes to %s need a restart; kept the running ones", restart);
	log_info("reload: applied %s as generation %llu (changed: %s): %zu backends, %zu routes, "
		 "%zu tenants, %zu deny entries%s; requests in flight finish on generation %llu",
		 next->path, (unsigned long long)fresh->gen, changed[0] ? changed : "nothing",
		 next->nbackends, next->nroutes, next->ntenants, next->kernel.ndeny,
		 gw->kern ? " (kernel maps updated)" : "", (unsigned long long)cur->gen);
	char text[sizeof(changed) + sizeof(restart) + 64];
	snprintf(text, sizeof(text), "generation %llu; changed: %s%s%s%s",
		 (unsigned long long)fresh->gen, changed[0] ? changed : "nothing",
		 restart[0] ? "; needs a restart (kept running): " : "", restart,
		 "");
	reload_outcome(gw, asked, true, text);
}

int gateway_start(struct gateway *gw)
{
	for (unsigned i = 0; i < gw->nworkers; i++) {
		struct worker *w = &gw->workers[i];
		int err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err) {
			log_error("worker %u: cannot start thread: %s", i, strerror(err));
			return -err;
		}
	}
	return 0;
}

void gateway_drain(struct gateway *gw)
{
	uint64_t one = 1;
	for (unsigned i = 0; i < gw->nworkers; i++) {
		ssize_t n = write(gw->workers[i].wake_fd, &one, sizeof(one));
		(void)n;
	}
}

int gateway_wait(struct gateway *gw)
{
	int rc = 0;
	for (unsigned i = 0; i < gw->nworkers; i++) {
		pthread_join(gw->workers[i].thread, NULL);
		rc |= gw->workers[i].exit_code;
	}
	return rc;
}

void gateway_free(struct gateway *gw)
{
	if (!gw)
		return;
	/* Workers in reverse: worker 0 owns the access log the others share. */
	for (unsigned i = gw->nworkers; i-- > 0;)
		worker_destroy(&gw->workers[i]);
	/* The workers' references are gone (older snapshots were retired to
	 * the qsbr, which auth_stop empties); the refresher thread reads the
	 * latest config until auth_stop, so the latest goes after it. */
	auth_stop(&gw->auth);
	snap_free(gw->snap);
	pthread_mutex_destroy(&gw->reload_lock);
	quota_global_free(gw->global);
	kern_close(gw->kern);
	if (gw->tls_server)
		tls_server_ctx_free(gw->tls_server);
	for (size_t i = 0; i < gw->nold_tls; i++)
		tls_server_ctx_free(gw->old_tls[i]);
	free(gw->old_tls);
	free(gw->local_tenants);
	free(gw->local_slots);
	free(gw->workers);
	free(gw->metrics);
	free(gw);
}
