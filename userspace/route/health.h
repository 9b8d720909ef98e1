/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Active health checks of the backends (backends[].health_check).
 *
 * One thread of its own, off the workers, GETs each checked backend's path
 * every interval with libcurl (a multi handle: the checks of all backends
 * run side by side, each bounded by its timeout).  unhealthy_after failed
 * checks in a row mark a backend down, healthy_after passed ones up again.
 * The workers read the mark with a relaxed load (route_arm_available): a
 * down backend's targets are skipped as if their breaker were open.
 *
 * A backend without health_check is always up here; passive outlier
 * detection (the breakers of route.c) still applies to it.
 */
#ifndef SLUICE_ROUTE_HEALTH_H
#define SLUICE_ROUTE_HEALTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

struct health_target {
	uint8_t down;			/* atomic: the workers read it */
	bool checked;			/* health_check configured */
	unsigned fails, passes;		/* in a row (thread only) */
	uint64_t next_ns;		/* next check due (thread only) */
	void *easy;			/* its curl handle, NULL when idle */
	char *url;
	uint64_t checks, failed;	/* counters for /metrics (relaxed) */
};

struct health {
	const struct sluice_config *cfg;	/* the snapshot it checks */
	struct health_target *t;	/* by backend index */
	unsigned n;
	void *multi;			/* CURLM */
	pthread_t thread;
	bool running;
	bool stop;			/* atomic */
};

/* Set up for cfg's backends and start the thread when one is checked.
 * 0 or a negative errno. */
int health_start(struct health *h, const struct sluice_config *cfg);
void health_stop(struct health *h);

/* Whether backend b may take requests by its active checks. */
static inline bool health_up(const struct health *h, unsigned b)
{
	return !h || b >= h->n || !__atomic_load_n(&h->t[b].down, __ATOMIC_RELAXED);
}

/* sluice_backend_up and sluice_backend_health_checks_total. */
int health_render_metrics(const struct health *h, struct buf *out);

#endif
