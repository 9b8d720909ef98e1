/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus series for identity and quotas, read where they live (the
 * tenant state array, the Redis client's counters, the auth refresher):
 *
 *   sluice_tenant_requests_in_flight{tenant}            gauge
 *   sluice_tenant_quota_denied_total{tenant}            counter (429s)
 *   sluice_tenant_quota_tokens{tenant,window}           gauge (minute, day, month:
 *                                                       used + reserved, this window)
 *   sluice_quota_redis_up                               gauge (global mode only)
 *   sluice_quota_redis_calls_total                      counter
 *   sluice_quota_redis_errors_total                     counter
 *   sluice_quota_redis_policy_total{action}             counter (fail_open, fail_closed)
 *   sluice_auth_key_reloads_total{result}               counter (ok, error)
 *   sluice_auth_jwks_refreshes_total{result}            counter (ok, error)
 *   sluice_auth_jwt_cache_total{result}                 counter (hit, miss: verified)
 */
#ifndef SLUICE_OBS_QUOTA_METRICS_H
#define SLUICE_OBS_QUOTA_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "sluice_maps.h"

struct quota_metrics_input {
	const struct sluice_tenant_state *tenants;	/* SLUICE_MAX_TENANTS */
	const char *const *names;			/* NULL: no such tenant */
	uint64_t now_ms;				/* unix ms, for the windows */
	bool global;					/* Redis counters below are set */
	bool redis_up;
	uint64_t redis_calls, redis_errors, fail_open, fail_closed;
	uint64_t key_reloads, key_reload_errors, jwks_refreshes, jwks_refresh_errors;
	uint64_t jwt_cache_hits, jwt_cache_misses;
};

int quota_metrics_render(struct buf *out, const struct quota_metrics_input *in);

#endif
