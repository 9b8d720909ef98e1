/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guardrail counters, one set per worker (its only writer, relaxed
 * atomics), summed at scrape time like the worker metrics:
 *
 *   sluice_guardrail_hits_total{policy,entity,action,direction}   counter
 *       action: mask, block, flag; direction: request, response
 *
 * A hit is one request or stream in which the entity was found, not one
 * occurrence.  Policies are counted by their position in the config;
 * labels come from the config being served at scrape time.
 */
#ifndef SLUICE_OBS_GUARD_METRICS_H
#define SLUICE_OBS_GUARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "guard/guard.h"

#define GUARD_METRICS_POLICIES	16	/* policies counted; later ones are not */

enum guard_direction { GUARD_DIR_REQUEST, GUARD_DIR_RESPONSE, GUARD_DIRS };

struct guard_metrics {
	uint64_t hits[GUARD_METRICS_POLICIES][GUARD_ENTITY_MAX][GUARD_BLOCK + 1][GUARD_DIRS];
};

/* Count a result of policy p of cfg. */
void guard_metrics_count(struct guard_metrics *m, const struct sluice_config *cfg,
			 const struct guard_policy *p, const struct guard_result *res,
			 enum guard_direction dir);
int guard_metrics_render(struct buf *out, struct guard_metrics *const *workers, size_t n,
			 const struct sluice_config *cfg);

#endif
