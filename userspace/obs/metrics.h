/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics.
 *
 * Each worker owns one struct metrics and is its only writer, so counting
 * takes no lock and no atomic read-modify-write: counters are bumped with
 * relaxed atomic load + store.  A scrape (any worker serving GET /metrics)
 * reads every worker's struct with relaxed loads and sums them, so a scrape
 * never stalls a request.
 *
 * Exposed (names are the contract with dashboards):
 *   sluice_requests_total{model,backend,status}           counter
 *   sluice_tokens_total{model,direction}                  counter
 *       direction: input, output, cached_input, reasoning
 *   sluice_request_duration_seconds{model}                histogram
 *   sluice_time_to_first_token_seconds{model}             histogram
 *   sluice_upstream_errors_total{backend,kind}            counter
 *       kind: connect, reset, timeout, tls, protocol
 *   sluice_connections_active                             gauge
 *   sluice_connections_total                              counter
 *   sluice_connections_rejected_total                     counter
 *   sluice_build_info{version}                            gauge (1)
 * Models are interned per worker up to a fixed number of distinct names;
 * further names are counted under model="other" so a client cannot blow up
 * the series count.
 */
#ifndef SLUICE_OBS_METRICS_H
#define SLUICE_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "obs/record.h"

enum upstream_error_kind {
	UPSTREAM_ERR_CONNECT, UPSTREAM_ERR_RESET, UPSTREAM_ERR_TIMEOUT,
	UPSTREAM_ERR_TLS, UPSTREAM_ERR_PROTOCOL, UPSTREAM_ERR_KINDS,
};

struct metrics;

/* The latency buckets every sluice histogram uses (route_view.c too):
 * upper bounds in ns, their le="" texts (the last is +Inf), and the
 * bucket of a duration. */
#define METRICS_BUCKETS	16
extern const uint64_t metrics_bucket_bound_ns[METRICS_BUCKETS - 1];
extern const char *const metrics_bucket_le[METRICS_BUCKETS];
unsigned metrics_bucket_of(uint64_t ns);

/* One per worker; the backends of cfg name the backend label values. */
struct metrics *metrics_new(const struct sluice_config *cfg);
void metrics_free(struct metrics *m);

void metrics_request_done(struct metrics *m, const struct request_record *rec);
void metrics_upstream_error(struct metrics *m, unsigned backend, enum upstream_error_kind kind);
void metrics_conn_opened(struct metrics *m);
void metrics_conn_closed(struct metrics *m);
void metrics_conn_rejected(struct metrics *m);

/* Append the exposition text of all workers' metrics, summed, to out.
 * 0 or -ENOMEM. */
int metrics_render(struct metrics *const *workers, size_t n, struct buf *out);

#endif
