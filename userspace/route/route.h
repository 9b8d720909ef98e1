/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model -> backend routing.
 *
 * A route table is built once from a config snapshot and is read-only, so
 * all workers share it.  The only mutable part is the round-robin cursor
 * for models served by several backends, which lives in a per-worker
 * struct route_cursor: no lock or shared cache line on the request path.
 */
#ifndef SLUICE_ROUTE_ROUTE_H
#define SLUICE_ROUTE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/str.h"

struct route_entry {
	const char *model;		/* exact name (points into the config) */
	size_t len;
	uint32_t hash;
	unsigned first;			/* index of its first backend in table->targets */
	unsigned count;			/* number of backends serving it */
};

struct route_table {
	struct route_entry *slots;	/* open addressing, power of two */
	unsigned nslots;
	unsigned nentries;
	unsigned *targets;		/* backend indexes, grouped per entry */
	unsigned ntargets;
	unsigned wild_first;		/* the "*" backends, as one extra group */
	unsigned wild_count;
};

/* Round-robin position of one worker, one counter per entry plus "*". */
struct route_cursor {
	unsigned *next;
	unsigned n;
};

int route_table_build(struct route_table *rt, const struct sluice_config *cfg);
void route_table_free(struct route_table *rt);

int route_cursor_init(struct route_cursor *cur, const struct route_table *rt);
void route_cursor_free(struct route_cursor *cur);

/* Backend index for model, taking turns among the backends that list it by
 * name, else among the "*" backends; -1 when nobody serves it. */
int route_pick(const struct route_table *rt, struct route_cursor *cur, struct str model);

/* The OpenAI list body of GET /v1/models: every model named in the config
 * (not "*"), once, in config order.  0 or -ENOMEM. */
int route_models_body(const struct sluice_config *cfg, struct buf *out);
/* The same list with only the models `allowed` accepts (a tenant's). */
int route_models_body_for(const struct sluice_config *cfg, struct buf *out,
			  bool (*allowed)(const char *model, void *arg), void *arg);

#endif
