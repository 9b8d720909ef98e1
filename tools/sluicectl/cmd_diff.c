/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl diff OLD NEW: what a reload (SIGHUP) from config OLD to NEW
 * would change, one line per change, each marked with how it applies:
 * "reload" (tenants, their networks, limits and keys files, the deny list,
 * the admin token, backends, routes, sizes, timeouts) or "restart"
 * (listeners, workers, log settings, kernel attach points, Redis), as
 * sluiced's reload decides.
 * Both files load like sluiced loads them (includes, ${VAR}), so a broken
 * NEW is reported with its file, line and key before anyone reloads it.
 *
 *     tenant beta: added                                   reload
 *     tenant acme: limits.requests_per_minute 600 -> 100    reload
 *     backend local: url http://a/v1 -> http://b/v1         reload
 *
 * Exit 0 with "no changes" or the list; 1 when a file does not load.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "ctl.h"
#include "render.h"

struct diff {
	bool json;
	struct jw w;
	unsigned n;
};

/* One change: subject ("tenant acme", "" for top-level), what changed,
 * from and to (NULL for added/removed wholes). */
static void change(struct diff *d, const char *subject, const char *what, const char *from,
		   const char *to, bool restart)
{
	const char *applies = restart ? "restart" : "reload";
	d->n++;
	if (d->json) {
		jw_open(&d->w, NULL);
		jw_str(&d->w, "subject", subject);
		jw_str(&d->w, "what", what);
		jw_str(&d->w, "from", from);
		jw_str(&d->w, "to", to);
		jw_str(&d->w, "applies", applies);
		jw_close(&d->w);
		return;
	}
	char line[1024];
	int n;
	if (from || to)
		n = snprintf(line, sizeof(line), "%s%s%s %s -> %s", subject, *subject ? ": " : "",
			     what, from ? from : "(none)", to ? to : "(none)");
	else
		n = snprintf(line, sizeof(line), "%s%s%s", subject, *subject ? ": " : "", what);
	(void)n;
	printf("%-72s %s\n", line, applies);
}

static bool same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void diff_str(struct diff *d, const char *subject, const char *what, const char *a,
		     const char *b, bool restart)
{
	if (!same_str(a, b))
		change(d, subject, what, a && *a ? a : NULL, b && *b ? b : NULL, restart);
}

static void diff_u64(struct diff *d, const char *subject, const char *what, uint64_t a,
		     uint64_t b, bool restart)
{
	char fa[32], fb[32];
	if (a == b)
		return;
	snprintf(fa, sizeof(fa), "%" PRIu64, a);
	snprintf(fb, sizeof(fb), "%" PRIu64, b);
	change(d, subject, what, fa, fb, restart);
}

/* A list of strings as "[a, b]" for the output. */
static void join(char *out, size_t len, char *const *items, size_t n)
{
	size_t used = (size_t)snprintf(out, len, "[");
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", items[i]);
	if (used < len)
		snprintf(out + used, len - used, "]");
}

static void diff_list(struct diff *d, const char *subject, const char *what, char *const *a,
		      size_t na, char *const *b, size_t nb, bool restart)
{
	bool same = na == nb;
	for (size_t i = 0; same && i < na; i++)
		same = strcmp(a[i], b[i]) == 0;
	if (same)
		return;
	char fa[512], fb[512];
	join(fa, sizeof(fa), a, na);
	join(fb, sizeof(fb), b, nb);
	change(d, subject, what, fa, fb, restart);
}

static void diff_cidrs(struct diff *d, const char *subject, const char *what,
		       const struct cidr_cfg *a, size_t na, const struct cidr_cfg *b, size_t nb,
		       bool restart)
{
	char *ta[64], *tb[64];
	size_t ka = na < 64 ? na : 64, kb = nb < 64 ? nb : 64;
	for (size_t i = 0; i < ka; i++)
		ta[i] = a[i].text;
	for (size_t i = 0; i < kb; i++)
		tb[i] = b[i].text;
	diff_list(d, subject, what, ta, ka, tb, kb, restart);
}

static void diff_limits(struct diff *d, const char *subject, const char *prefix,
			const struct sluice_limits *a, const struct sluice_limits *b)
{
	static const struct {
		const char *name;
		size_t off;
		bool u32;
	} fields[] = {
		{ "requests_per_minute", offsetof(struct sluice_limits, requests_per_minute), false },
		{ "tokens_per_minute", offsetof(struct sluice_limits, tokens_per_minute), false },
		{ "input_tokens_per_minute",
		  offsetof(struct sluice_limits, input_tokens_per_minute), false },
		{ "output_tokens_per_minute",
		  offsetof(struct sluice_limits, output_tokens_per_minute), false },
		{ "tokens_per_day", offsetof(struct sluice_limits, tokens_per_day), false },
		{ "tokens_per_month", offsetof(struct sluice_limits, tokens_per_month), false },
		{ "concurrent", offsetof(struct sluice_limits, concurrent), true },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *pa = (const char *)a + fields[i].off, *pb = (const char *)b + fields[i].off;
		uint64_t va, vb;
		if (fields[i].u32) {
			uint32_t x, y;
			memcpy(&x, pa, sizeof(x));
			memcpy(&y, pb, sizeof(y));
			va = x, vb = y;
		} else {
			memcpy(&va, pa, sizeof(va));
			memcpy(&vb, pb, sizeof(vb));
		}
		char what[96];
		snprintf(what, sizeof(what), "%s.%s", prefix, fields[i].name);
		diff_u64(d, subject, what, va, vb, false);
	}
}

static void diff_tenant(struct diff *d, const struct tenant_cfg *a, const struct tenant_cfg *b)
{
	char subject[160];
	snprintf(subject, sizeof(subject), "tenant %s", a->name);
	/* No id: a tenant's slot follows its name (quota/tenants.c). */
	diff_str(d, subject, "keys_file", a->keys_file, b->keys_file, false);
	diff_cidrs(d, subject, "networks", a->networks, a->nnetworks, b->networks, b->nnetworks,
		   false);
	diff_list(d, subject, "models", a->models, a->nmodels, b->models, b->nmodels, false);
	diff_list(d, subject, "client_subjects", a->client_subjects, a->nclient_subjects,
		  b->client_subjects, b->nclient_subjects, false);
	diff_limits(d, subject, "limits", &a->limits, &b->limits);
	diff_limits(d, subject, "key_limits", &a->key_limits, &b->key_limits);
	diff_u64(d, subject, "limits.conn_rate", a->conn_rate, b->conn_rate, false);
	diff_u64(d, subject, "limits.conn_burst", a->conn_burst, b->conn_burst, false);
	diff_u64(d, subject, "limits.max_connections", a->max_connections, b->max_connections,
		 false);
	diff_str(d, subject, "workers", a->workers == TENANT_WORKERS_DEDICATED ? "dedicated" : "shared",
		 b->workers == TENANT_WORKERS_DEDICATED ? "dedicated" : "shared", false);
	/* model_limits by glob: added, removed, or changed limits. */
	for (size_t i = 0; i < a->nmodel_limits; i++) {
		const struct model_limits_cfg *ma = &a->model_limits[i], *mb = NULL;
		for (size_t j = 0; j < b->nmodel_limits && !mb; j++)
			if (strcmp(b->model_limits[j].model, ma->model) == 0)
				mb = &b->model_limits[j];
		char what[128];
		snprintf(what, sizeof(what), "model_limits[%s]", ma->model);
		if (!mb) {
			char w2[160];
			snprintf(w2, sizeof(w2), "%s: removed", what);
			change(d, subject, w2, NULL, NULL, false);
		} else {
			diff_limits(d, subject, what, &ma->limits, &mb->limits);
		}
	}
	for (size_t j = 0; j < b->nmodel_limits; j++) {
		bool found = false;
		for (size_t i = 0; i < a->nmodel_limits && !found; i++)
			found = strcmp(a->model_limits[i].model, b->model_limits[j].model) == 0;
		if (!found) {
			char w2[160];
			snprintf(w2, sizeof(w2), "model_limits[%s]: added", b->model_limits[j].model);
			change(d, subject, w2, NULL, NULL, false);
		}
	}
}

static void diff_tenants(struct diff *d, const struct sluice_config *a,
			 const struct sluice_config *b)
{
	char subject[160];
	for (size_t i = 0; i < a->ntenants; i++) {
		const struct tenant_cfg *tb = config_tenant_by_name(b, a->tenants[i].name);
		snprintf(subject, sizeof(subject), "tenant %s", a->tenants[i].name);
		if (tb)
			diff_tenant(d, &a->tenants[i], tb);
		else
			change(d, subject, "removed", NULL, NULL, false);
	}
	for (size_t i = 0; i < b->ntenants; i++) {
		snprintf(subject, sizeof(subject), "tenant %s", b->tenants[i].name);
		if (!config_tenant_by_name(a, b->tenants[i].name))
			change(d, subject, "added", NULL, NULL, false);
	}
}

static const struct backend_cfg *backend_by_name(const struct sluice_config *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcmp(c->backends[i].name, name) == 0)
			return &c->backends[i];
	return NULL;
}

/* Backends apply on reload (requests in flight keep the old ones).  The
 * api_key is compared but never printed. */
static void diff_backends(struct diff *d, const struct sluice_config *a,
			  const struct sluice_config *b)
{
	char subject[160];
	for (size_t i = 0; i < a->nbackends; i++) {
		const struct backend_cfg *x = &a->backends[i], *y = backend_by_name(b, x->name);
		snprintf(subject, sizeof(subject), "backend %s", x->name);
		if (!y) {
			change(d, subject, "removed", NULL, NULL, false);
			continue;
		}
		diff_str(d, subject, "url", x->url, y->url, false);
		diff_list(d, subject, "models", x->models, x->nmodels, y->models, y->nmodels, false);
		if (!same_str(x->api_key, y->api_key))
			change(d, subject, "api_key changed", NULL, NULL, false);
		diff_str(d, subject, "ca_file", x->ca_file, y->ca_file, false);
		diff_u64(d, subject, "tls_verify", x->tls_verify, y->tls_verify, false);
		diff_u64(d, subject, "max_idle_connections", x->max_idle, y->max_idle, false);
		diff_u64(d, subject, "idle_timeout_ms", x->idle_timeout_ms, y->idle_timeout_ms, false);
	}
	for (size_t i = 0; i < b->nbackends; i++) {
		snprintf(subject, sizeof(subject), "backend %s", b->backends[i].name);
		if (!backend_by_name(a, b->backends[i].name))
			change(d, subject, "added", NULL, NULL, false);
	}
}

/* A route's targets or fallback chain as "backend/model*weight, ...". */
static void targets_text(char *out, size_t len, const struct route_target_cfg *t, size_t n)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s%s%s*%u", i ? ", " : "",
					 t[i].backend_name, t[i].model ? "/" : "",
					 t[i].model ? t[i].model : "", t[i].weight);
}

/* Routes are rebuilt by a reload (which also resets weights set through
 * the admin API to the file's).  Routes pair up by model and position
 * among the routes of that model. */
static void diff_routes(struct diff *d, const struct sluice_config *a,
			const struct sluice_config *b)
{
	for (int pass = 0; pass < 2; pass++) {
		const struct sluice_config *x = pass ? b : a, *y = pass ? a : b;
		for (size_t i = 0; i < x->nroutes; i++) {
			const struct route_cfg *r = &x->routes[i], *o = NULL;
			size_t nth = 0, seen = 0;
			for (size_t j = 0; j < i; j++)
				nth += strcmp(x->routes[j].model, r->model) == 0;
			for (size_t j = 0; j < y->nroutes && !o; j++)
				if (strcmp(y->routes[j].model, r->model) == 0 && seen++ == nth)
					o = &y->routes[j];
			char subject[160];
			snprintf(subject, sizeof(subject), "route %s", r->model);
			if (!o) {
				change(d, subject, pass ? "added" : "removed", NULL, NULL, false);
				continue;
			}
			if (pass)
				continue;	/* pairs are compared once */
			char ta[512], tb[512];
			targets_text(ta, sizeof(ta), r->targets, r->ntargets);
			targets_text(tb, sizeof(tb), o->targets, o->ntargets);
			diff_str(d, subject, "targets", ta, tb, false);
			targets_text(ta, sizeof(ta), r->fallback, r->nfallback);
			targets_text(tb, sizeof(tb), o->fallback, o->nfallback);
			diff_str(d, subject, "fallback", ta, tb, false);
			diff_str(d, subject, "match.tenant", r->match_tenant, o->match_tenant, false);
			diff_str(d, subject, "match.header", r->match_header, o->match_header, false);
			diff_u64(d, subject, "balance", r->balance, o->balance, false);
			diff_u64(d, subject, "sticky", r->sticky, o->sticky, false);
			diff_u64(d, subject, "retry_budget.percent", r->retry_percent, o->retry_percent,
				 false);
			diff_u64(d, subject, "breaker.failures", r->breaker_failures,
				 o->breaker_failures, false);
			diff_u64(d, subject, "breaker.open_ms", r->breaker_open_ms, o->breaker_open_ms,
				 false);
		}
	}
}

static void diff_top(struct diff *d, const struct sluice_config *a, const struct sluice_config *b)
{
	diff_str(d, "", "listen", a->listen, b->listen, true);
	diff_u64(d, "", "workers", a->workers, b->workers, true);
	diff_str(d, "", "access_log", a->access_log, b->access_log, true);
	diff_str(d, "", "log_level", a->log_level, b->log_level, true);
	diff_u64(d, "", "limits.max_body_bytes", a->max_body_bytes, b->max_body_bytes, false);
	diff_u64(d, "", "limits.max_header_bytes", a->max_header_bytes, b->max_header_bytes, false);
	diff_u64(d, "", "limits.max_connections", a->max_connections, b->max_connections, false);
	diff_u64(d, "", "limits.max_sse_line_bytes", a->max_sse_line_bytes, b->max_sse_line_bytes,
		 false);
	diff_u64(d, "", "limits.max_sse_event_bytes", a->max_sse_event_bytes,
		 b->max_sse_event_bytes, false);
	diff_u64(d, "", "limits.max_stream_bytes", a->max_stream_bytes, b->max_stream_bytes, false);
	diff_u64(d, "", "timeouts.client_header_ms", a->client_header_ms, b->client_header_ms, false);
	diff_u64(d, "", "timeouts.client_body_ms", a->client_body_ms, b->client_body_ms, false);
	diff_u64(d, "", "timeouts.keepalive_ms", a->keepalive_ms, b->keepalive_ms, false);
	diff_u64(d, "", "timeouts.upstream_connect_ms", a->upstream_connect_ms,
		 b->upstream_connect_ms, false);
	diff_u64(d, "", "timeouts.upstream_first_byte_ms", a->upstream_first_byte_ms,
		 b->upstream_first_byte_ms, false);
	diff_u64(d, "", "timeouts.upstream_idle_ms", a->upstream_idle_ms, b->upstream_idle_ms, false);
	diff_u64(d, "", "timeouts.drain_ms", a->drain_ms, b->drain_ms, false);
	diff_str(d, "", "admin.listen", a->admin.listen, b->admin.listen, true);
	if (!same_str(a->admin.token, b->admin.token))
		change(d, "", "admin.token changed", NULL, NULL, false);
	diff_cidrs(d, "", "kernel.deny", a->kernel.deny, a->kernel.ndeny, b->kernel.deny,
		   b->kernel.ndeny, false);
	diff_u64(d, "", "kernel.source_conn_rate", a->kernel.source_conn_rate,
		 b->kernel.source_conn_rate, false);
	diff_u64(d, "", "kernel.source_conn_burst", a->kernel.source_conn_burst,
		 b->kernel.source_conn_burst, false);
	diff_list(d, "", "kernel.xdp.interfaces", a->kernel.xdp_interfaces,
		  a->kernel.n_xdp_interfaces, b->kernel.xdp_interfaces, b->kernel.n_xdp_interfaces,
		  true);
	diff_str(d, "", "kernel.pin_root", a->kernel.pin_root, b->kernel.pin_root, true);
	diff_str(d, "", "quota.redis.url", a->quota.redis_url, b->quota.redis_url, true);
}

static int load(const char *path, struct sluice_config **cfg)
{
	struct config_error cerr = { { 0 } };
	int err = config_load(path, cfg, &cerr);
	if (err)
		fprintf(stderr, "sluicectl: diff: %s\n", cerr.text[0] ? cerr.text : strerror(-err));
	return err;
}

int cmd_diff(const struct ctl *ctl, int argc, char **argv)
{
	if (argc != 3) {
		ctl_usage("diff", true);
		return CTL_USAGE;
	}
	struct sluice_config *a = NULL, *b = NULL;
	if (load(argv[1], &a) || load(argv[2], &b)) {
		config_free(a);
		return CTL_FAILED;
	}
	struct diff d = { .json = ctl->json };
	if (d.json) {
		jw_init(&d.w);
		jw_open(&d.w, NULL);
		jw_open_array(&d.w, "changes");
	}
	diff_top(&d, a, b);
	diff_backends(&d, a, b);
	diff_routes(&d, a, b);
	diff_tenants(&d, a, b);
	int rc = 0;
	if (d.json) {
		jw_close_array(&d.w);
		jw_close(&d.w);
		rc = jw_finish(&d.w, stdout);
	} else if (d.n == 0) {
		printf("no changes\n");
	}
	config_free(a);
	config_free(b);
	return rc ? CTL_FAILED : CTL_OK;
}
