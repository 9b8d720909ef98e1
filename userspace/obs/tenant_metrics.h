/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus series for what lives in the shared maps: the kernel's
 * decision counters and the per-tenant state (connections from sockops,
 * requests and tokens from the daemon), read where they live instead of
 * being copied into the worker metrics.
 *
 *   sluice_kernel_decisions_total{reason}          counter
 *   sluice_tenant_active_connections{tenant}       gauge
 *   sluice_tenant_connections_total{tenant}        counter
 *   sluice_tenant_requests_total{tenant}           counter
 *   sluice_tenant_tokens_total{tenant,direction}   counter (input, output)
 *   sluice_tenant_blocked{tenant}                  gauge
 *   sluice_tls_connections_total{mode}             counter (ktls, ktls_tx,
 *                                                  userspace, failed, plain_http)
 *   sluice_upstream_tls_connections_total{mode}    counter (ktls, ktls_tx,
 *                                                  userspace, failed)
 */
#ifndef SLUICE_OBS_TENANT_METRICS_H
#define SLUICE_OBS_TENANT_METRICS_H

#include <stdint.h>

#include "core/buf.h"
#include "sluice_maps.h"

/* counters: SLUICE_C_MAX values, or NULL when the kernel half is off.
 * names[id]: the tenant's name, NULL for ids no tenant has. */
int tenant_metrics_render(struct buf *out, const uint64_t *counters,
			  const struct sluice_tenant_state *tenants,
			  const char *const *names,
			  const struct sluice_daemon_stats *stats);

#endif
