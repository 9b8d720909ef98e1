/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running snapshot: one config file and everything the data plane
 * derives from it (route table, /v1/models body, per-backend TLS client
 * contexts and fixed request headers, each worker's route state).
 *
 * A reload builds a new snapshot and publishes it (gw->snap).  Workers
 * switch to it at the top of a loop iteration; exchanges and upstream
 * connections started before keep the one they started on to their end,
 * so a request in flight keeps its backend, route table, TLS context and
 * limits.
 *
 * Lifetime: the gateway holds one reference on the published snapshot and
 * every worker one on the snapshot it currently serves.  Exchanges and
 * upstreams do not touch the shared count: each worker counts its own
 * users of a snapshot (snap_hold / snap_release, a plain increment on the
 * worker's own cache line), and drops its reference once it has moved on
 * and its last user is gone.  The last reference retires the snapshot
 * through the workers' quiescent-state reclamation (auth.qsbr), so a raw
 * pointer a worker loaded in this loop iteration (admin token, tenant
 * name) stays valid until it goes quiescent.
 */
#ifndef SLUICE_PROXY_SNAP_H
#define SLUICE_PROXY_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "proxy/stage.h"
#include "route/route.h"

struct gateway;
struct tls_client_ctx;

/* One worker's part: its own cache line. */
struct snap_worker {
	_Alignas(64) unsigned users;	/* exchanges and upstreams on this snapshot */
	struct route_cursor cursor;	/* route state for this table (worker-owned);
					 * reads the snapshot's health marks */
};

struct snap {
	unsigned refs;			/* atomic: the gateway, and workers */
	uint64_t gen;			/* 1 at start-up, +1 per applied reload */
	struct gateway *gw;
	struct sluice_config *cfg;
	bool owns_cfg;			/* false for the start-up config: main's */
	struct stage_list stages;	/* what every exchange of it runs */
	struct route_table routes;
	struct health health;		/* active checks of these backends */
	struct buf models_body;		/* GET /v1/models */
	struct tls_client_ctx **tls;	/* per backend; NULL for http */
	struct buf *upstream_headers;	/* per backend: Host, Authorization */
	int *metric_backend;		/* per backend: its index in the workers'
					 * metrics (the start-up backends, by
					 * name), or -1 */
	unsigned nworkers;
	struct snap_worker *w;		/* per worker */
};

/* Build a snapshot of cfg; with `own`, taking cfg over (also on failure).
 * `first` is the start-up config, whose backends name the metrics' labels.
 * On failure, why says what (file: backends: NAME: reason). */
int snap_new(struct gateway *gw, struct sluice_config *cfg, bool own,
	     const struct sluice_config *first, unsigned nworkers, uint64_t gen,
	     struct snap **out, char *why, size_t whylen);

/* A reference, for a holder that may outlive the one it got s from.
 * snap_tryref fails on a snapshot whose last reference is gone (the
 * pointer was loaded just before it was replaced and released). */
void snap_ref(struct snap *s);
bool snap_tryref(struct snap *s);
void snap_unref(struct snap *s);

/* Free at once: only when no worker runs (start-up failure, exit). */
void snap_free(struct snap *s);

/* Backend `b` of `from` has the same name, address, TLS client settings,
 * credentials and pool settings as some backend of `to`: its index there,
 * else -1.  A connection opened for it may serve `to`. */
int snap_same_backend(const struct snap *from, unsigned b, const struct snap *to);
/* The settings a connection to the backend depends on are the same. */
bool snap_backend_conn_same(const struct backend_cfg *x, const struct backend_cfg *y);

#endif
