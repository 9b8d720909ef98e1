/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/qsbr.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

static int tls_contexts_new(struct snap *s, char *why, size_t whylen)
{
	const struct sluice_config *cfg = s->cfg;
	s->tls = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*s->tls));
	if (!s->tls)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *be = &cfg->backends[i];
		if (!be->tls)
			continue;
		char err[256];
		int r = tls_client_ctx_new(be, &s->tls[i], err, sizeof(err));
		if (r) {
			snprintf(why, whylen, "%s: backends: %s: %s", cfg->path, be->name, err);
			return r;
		}
	}
	return 0;
}

/* The headers every request to a backend carries, rendered once. */
static int upstream_headers_new(struct snap *s)
{
	const struct sluice_config *cfg = s->cfg;
	s->upstream_headers = calloc(cfg->nbackends ? cfg->nbackends : 1,
				     sizeof(*s->upstream_headers));
	if (!s->upstream_headers)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *be = &cfg->backends[i];
		struct buf *b = &s->upstream_headers[i];
		bool v6 = strchr(be->host, ':') != NULL;
		bool default_port = be->port == (be->tls ? 443 : 80);
		int err = buf_printf(b, "Host: %s%s%s", v6 ? "[" : "", be->host, v6 ? "]" : "");
		if (!err && !default_port)
			err = buf_printf(b, ":%u", (unsigned)be->port);
		if (!err)
			err = buf_printf(b, "\r\n");
		if (!err && be->api_key && be->api_key[0])
			err = buf_printf(b, "Authorization: Bearer %s\r\n", be->api_key);
		if (err)
			return err;
	}
	return 0;
}

/* The workers' metrics label backends by their start-up index; a backend
 * added by a reload is counted under "none" until a restart. */
static int metric_backends_new(struct snap *s, const struct sluice_config *first)
{
	const struct sluice_config *cfg = s->cfg;
	s->metric_backend = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(int));
	if (!s->metric_backend)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->nbackends; i++) {
		s->metric_backend[i] = -1;
		for (size_t j = 0; j < first->nbackends; j++)
			if (strcmp(first->backends[j].name, cfg->backends[i].name) == 0)
				s->metric_backend[i] = (int)j;
	}
	return 0;
}

int snap_new(struct gateway *gw, struct sluice_config *cfg, bool own,
	     const struct sluice_config *first, unsigned nworkers, uint64_t gen,
	     struct snap **out, char *why, size_t whylen)
{
	snprintf(why, whylen, "%s: out of memory", cfg->path);
	struct snap *s = calloc(1, sizeof(*s));
	if (!s) {
		if (own)
			config_free(cfg);
		return -ENOMEM;
	}
	s->owns_cfg = own;
	s->refs = 1;
	s->gen = gen;
	s->gw = gw;
	s->cfg = cfg;
	s->nworkers = nworkers;
	s->w = aligned_alloc(64, (nworkers ? nworkers : 1) * sizeof(*s->w));
	int err = s->w ? 0 : -ENOMEM;
	if (s->w)
		memset(s->w, 0, (nworkers ? nworkers : 1) * sizeof(*s->w));
	if (!err)
		err = stage_list_build(&s->stages, cfg);
	if (!err)
		err = route_table_build(&s->routes, cfg);
	if (!err)
		err = route_models_body(cfg, &s->models_body);
	if (!err)
		err = tls_contexts_new(s, why, whylen);
	if (!err)
		err = upstream_headers_new(s);
	if (!err)
		err = metric_backends_new(s, first ? first : cfg);
	for (unsigned i = 0; !err && i < nworkers; i++)
		if (!(err = route_cursor_init(&s->w[i].cursor, &s->routes)))
			s->w[i].cursor.health = &s->health;
	/* The checks follow the snapshot's backends (their indices are this
	 * config's): a reload starts a checker of its own, and the old one
	 * stops with the old snapshot. */
	if (!err)
		err = health_start(&s->health, cfg);
	if (err) {
		snap_free(s);
		return err;
	}
	*out = s;
	return 0;
}

void snap_free(struct snap *s)
{
	if (!s)
		return;
	const struct sluice_config *cfg = s->cfg;
	health_stop(&s->health);	/* before the cursors that read it */
	for (unsigned i = 0; s->w && i < s->nworkers; i++)
		route_cursor_free(&s->w[i].cursor);
	free(s->w);
	for (size_t i = 0; s->tls && i < cfg->nbackends; i++)
		if (s->tls[i])
			tls_client_ctx_free(s->tls[i]);
	free(s->tls);
	for (size_t i = 0; s->upstream_headers && i < cfg->nbackends; i++)
		buf_free(&s->upstream_headers[i]);
	free(s->upstream_headers);
	free(s->metric_backend);
	buf_free(&s->models_body);
	route_table_free(&s->routes);
	if (s->owns_cfg)
		config_free(s->cfg);
	free(s);
}

static void snap_free_cb(void *p)
{
	snap_free(p);
}

void snap_ref(struct snap *s)
{
	__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
}

bool snap_tryref(struct snap *s)
{
	unsigned n = __atomic_load_n(&s->refs, __ATOMIC_RELAXED);
	while (n)
		if (__atomic_compare_exchange_n(&s->refs, &n, n + 1, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

void snap_unref(struct snap *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	log_info("reload: config generation %llu released by its last request",
		 (unsigned long long)s->gen);
	qsbr_retire(&s->gw->auth.qsbr, s, snap_free_cb);
}

static bool str_same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

bool snap_backend_conn_same(const struct backend_cfg *x, const struct backend_cfg *y)
{
	return str_same(x->name, y->name) && str_same(x->url, y->url) &&
	       str_same(x->api_key, y->api_key) && str_same(x->ca_file, y->ca_file) &&
	       x->tls_verify == y->tls_verify && x->max_idle == y->max_idle &&
	       x->idle_timeout_ms == y->idle_timeout_ms;
}

int snap_same_backend(const struct snap *from, unsigned b, const struct snap *to)
{
	const struct backend_cfg *x = &from->cfg->backends[b];
	for (size_t i = 0; i < to->cfg->nbackends; i++) {
		const struct backend_cfg *y = &to->cfg->backends[i];
		if (str_same(x->name, y->name))
			return snap_backend_conn_same(x, y) ? (int)i : -1;
	}
	return -1;
}
