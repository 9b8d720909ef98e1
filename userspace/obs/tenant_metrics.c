/* SPDX-License-Identifier: Apache-2.0 */
#define SLUICE_COUNTER_NAMES
#define SLUICE_TLS_MODE_NAMES
#include "obs/tenant_metrics.h"

#include <stdbool.h>

/* Tenant names are [A-Za-z0-9_.-] (checked by the config loader), so they
 * need no escaping as label values. */
struct tenant_series {
	const char *name, *help, *type;
};

static int render_counters(struct buf *out, const uint64_t *counters)
{
	int err = buf_append_cstr(out,
		"# HELP sluice_kernel_decisions_total Decisions of the XDP, sockops and steering programs, by reason.\n"
		"# TYPE sluice_kernel_decisions_total counter\n");
	for (unsigned c = 0; !err && c < SLUICE_C_MAX; c++)
		err = buf_printf(out, "sluice_kernel_decisions_total{reason=\"%s\"} %llu\n",
				 sluice_counter_names[c], (unsigned long long)counters[c]);
	return err;
}

static __u64 load_u64(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int render_family(struct buf *out, const struct tenant_series *s,
			 const struct sluice_tenant_state *tenants, const char *const *names,
			 int (*line)(struct buf *, const char *, const struct sluice_tenant_state *))
{
	int err = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name, s->type);
	for (unsigned id = 0; !err && id < SLUICE_MAX_TENANTS; id++)
		if (names[id])
			err = line(out, names[id], &tenants[id]);
	return err;
}

static int line_active(struct buf *out, const char *t, const struct sluice_tenant_state *st)
{
	int64_t v = __atomic_load_n(&st->active_connections, __ATOMIC_RELAXED);
	return buf_printf(out, "sluice_tenant_active_connections{tenant=\"%s\"} %lld\n", t,
			  (long long)(v < 0 ? 0 : v));
}

static int line_conns(struct buf *out, const char *t, const struct sluice_tenant_state *st)
{
	return buf_printf(out, "sluice_tenant_connections_total{tenant=\"%s\"} %llu\n", t,
			  (unsigned long long)load_u64(&st->connections_total));
}

static int line_requests(struct buf *out, const char *t, const struct sluice_tenant_state *st)
{
	return buf_printf(out, "sluice_tenant_requests_total{tenant=\"%s\"} %llu\n", t,
			  (unsigned long long)load_u64(&st->requests));
}

static int line_tokens(struct buf *out, const char *t, const struct sluice_tenant_state *st)
{
	return buf_printf(out,
			  "sluice_tenant_tokens_total{tenant=\"%s\",direction=\"input\"} %llu\n"
			  "sluice_tenant_tokens_total{tenant=\"%s\",direction=\"output\"} %llu\n",
			  t, (unsigned long long)load_u64(&st->tokens_in),
			  t, (unsigned long long)load_u64(&st->tokens_out));
}

static int line_blocked(struct buf *out, const char *t, const struct sluice_tenant_state *st)
{
	return buf_printf(out, "sluice_tenant_blocked{tenant=\"%s\"} %u\n", t,
			  __atomic_load_n(&st->blocked, __ATOMIC_RELAXED) ? 1u : 0u);
}

/* One counter per TLS mode but skip (SLUICE_TLS_MODES: none skipped). */
static int render_tls_modes(struct buf *out, const char *name, const char *help,
			    const __u64 *counts, unsigned skip)
{
	int err = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (unsigned m = 0; !err && m < SLUICE_TLS_MODES; m++)
		if (m != skip)
			err = buf_printf(out, "%s{mode=\"%s\"} %llu\n", name,
					 sluice_tls_mode_names[m],
					 (unsigned long long)load_u64(&counts[m]));
	return err;
}

/* Client connections only when the listener speaks TLS; connections to
 * https backends always (a backend cannot send plain HTTP to the
 * gateway's handshake, so that mode has no series there). */
static int render_tls(struct buf *out, const struct sluice_daemon_stats *stats)
{
	int err = 0;
	if (__atomic_load_n(&stats->tls_enabled, __ATOMIC_RELAXED))
		err = render_tls_modes(out, "sluice_tls_connections_total",
				       "TLS client connections by how their handshake ended.",
				       stats->tls_conns, SLUICE_TLS_MODES);
	if (!err)
		err = render_tls_modes(out, "sluice_upstream_tls_connections_total",
				       "TLS connections to backends by how their handshake ended.",
				       stats->upstream_tls_conns, SLUICE_TLS_PLAIN_HTTP);
	return err;
}

int tenant_metrics_render(struct buf *out, const uint64_t *counters,
			  const struct sluice_tenant_state *tenants,
			  const char *const *names,
			  const struct sluice_daemon_stats *stats)
{
	static const struct tenant_series series[] = {
		{ "sluice_tenant_active_connections", "Open client connections, counted by sockops.", "gauge" },
		{ "sluice_tenant_connections_total", "Client connections accepted, counted by sockops.", "counter" },
		{ "sluice_tenant_requests_total", "Requests answered, by tenant.", "counter" },
		{ "sluice_tenant_tokens_total", "Tokens reported by backends, by tenant and direction.", "counter" },
		{ "sluice_tenant_blocked", "1 while the tenant's new connections are refused.", "gauge" },
	};
	int (*const lines[])(struct buf *, const char *, const struct sluice_tenant_state *) = {
		line_active, line_conns, line_requests, line_tokens, line_blocked,
	};
	int err = counters ? render_counters(out, counters) : 0;
	for (size_t i = 0; !err && i < sizeof(series) / sizeof(*series); i++)
		err = render_family(out, &series[i], tenants, names, lines[i]);
	if (!err && stats)
		err = render_tls(out, stats);
	return err;
}
