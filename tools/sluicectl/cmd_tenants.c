/* SPDX-License-Identifier: Apache-2.0 */
/* sluicectl tenants: the tenant array, read through its mmap. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "maps.h"
#include "render.h"
#include "usage.h"

/* Configured, touched by traffic (anonymous sources, stale ids), or given
 * limits by quota set. */
static bool tenant_shown(const struct sluice_tenant_state *s, const struct usage_view *u)
{
	return s->configured || s->active_connections || s->connections_total ||
	       s->over_cap || s->conn_bucket.passed || s->conn_bucket.dropped ||
	       s->requests || s->tokens_in || s->tokens_out || limits_any(&s->limits) ||
	       usage_any(u);
}

/* New connections per second, from the GCRA interval. */
static double conn_rate(const struct sluice_tenant_state *s)
{
	return 1e9 / (double)s->conn_interval_ns;
}

static void json_tenant(struct jw *w, const struct ctl *ctl, unsigned id,
			const struct sluice_tenant_state *s, const struct usage_view *u)
{
	char tmp[16];

	jw_open(w, NULL);
	jw_u64(w, "id", id);
	jw_str(w, "name", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	jw_bool(w, "configured", s->configured);
	jw_i64(w, "active_connections", s->active_connections);
	jw_u64(w, "connections_total", s->connections_total);
	if (s->conn_interval_ns)
		jw_double(w, "conn_rate", conn_rate(s));
	else
		jw_null(w, "conn_rate");	/* unlimited */
	jw_u64(w, "conn_burst", s->conn_burst);
	if (s->max_connections)
		jw_u64(w, "max_connections", s->max_connections);
	else
		jw_null(w, "max_connections");	/* unlimited */
	jw_bool(w, "blocked", s->blocked);
	jw_u64(w, "worker_group", s->worker_group);
	jw_u64(w, "conn_passed", s->conn_bucket.passed);
	jw_u64(w, "conn_dropped", s->conn_bucket.dropped);
	jw_u64(w, "over_cap", s->over_cap);
	jw_u64(w, "requests", s->requests);
	jw_u64(w, "tokens_in", s->tokens_in);
	jw_u64(w, "tokens_out", s->tokens_out);
	usage_json(w, &s->limits, u);
	jw_close(w);
}

/* A copy of one tenant's record and its usage as of now_ms. */
static void tenant_read(const struct tenant_table *t, unsigned id, uint64_t now_ms,
			struct sluice_tenant_state *s, struct usage_view *u)
{
	*s = t->state[id];
	limits_copy(&t->state[id].limits, &s->limits);
	usage_view_of(&t->state[id].usage, now_ms, u);
}

static int print_json(const struct ctl *ctl, const struct tenant_table *t)
{
	uint64_t now_ms = ctl_now_ms();
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_open_array(&w, "tenants");
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++) {
		struct sluice_tenant_state s;
		struct usage_view u;

		tenant_read(t, id, now_ms, &s, &u);
		if (tenant_shown(&s, &u))
			json_tenant(&w, ctl, id, &s, &u);
	}
	jw_close_array(&w);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static void table_tenant(struct table *t, const struct ctl *ctl, unsigned id,
			 const struct sluice_tenant_state *s, const struct usage_view *u)
{
	char tmp[16];

	table_cell(t, "%u", id);
	table_cell(t, "%s", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	table_cell(t, "%lld", (long long)s->active_connections);
	table_cell(t, "%llu", (unsigned long long)s->connections_total);
	if (s->conn_interval_ns)
		table_cell(t, "%.6g/s", conn_rate(s));
	else
		table_cell(t, "unlimited");
	table_cell(t, "%llu", (unsigned long long)s->conn_burst);
	if (s->max_connections)
		table_cell(t, "%u", s->max_connections);
	else
		table_cell(t, "unlimited");
	table_cell(t, "%s", s->blocked ? "yes" : "no");
	if (s->worker_group)
		table_cell(t, "%u", s->worker_group);
	else
		table_cell(t, "shared");
	table_cell(t, "%llu", (unsigned long long)s->conn_bucket.passed);
	table_cell(t, "%llu", (unsigned long long)s->conn_bucket.dropped);
	table_cell(t, "%llu", (unsigned long long)s->requests);
	table_cell(t, "%llu", (unsigned long long)s->tokens_in);
	table_cell(t, "%llu", (unsigned long long)s->tokens_out);
	/* Quotas: used in the current window / limit. */
	usage_cell(t, u->requests_minute, s->limits.requests_per_minute);
	usage_cell(t, u->tokens_minute, s->limits.tokens_per_minute);
	usage_cell(t, u->concurrent, s->limits.concurrent);
	usage_cell(t, u->tokens_day, s->limits.tokens_per_day);
	usage_cell(t, u->tokens_month, s->limits.tokens_per_month);
	table_cell(t, "%llu", (unsigned long long)u->denied);
}

static int print_table(const struct ctl *ctl, const struct tenant_table *tt)
{
	static const char *const heads[] = {
		"ID", "NAME", "ACTIVE", "TOTAL", "RATE", "BURST", "MAXCONN", "BLOCKED",
		"GROUP", "PASSED", "DROPPED", "REQUESTS", "TOKENS_IN", "TOKENS_OUT",
		"REQ/MIN", "TOK/MIN", "INFLIGHT", "TOK/DAY", "TOK/MONTH", "DENIED",
	};
	enum { NCOLS = sizeof(heads) / sizeof(heads[0]) };
	/* Right-align the numbers: every column but NAME, BLOCKED and GROUP. */
	uint32_t right = ((1u << NCOLS) - 1) & ~((1u << 1) | (1u << 7) | (1u << 8));
	uint64_t now_ms = ctl_now_ms();
	struct table t;

	table_init(&t, NCOLS, heads, right);
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++) {
		struct sluice_tenant_state s;
		struct usage_view u;

		tenant_read(tt, id, now_ms, &s, &u);
		if (tenant_shown(&s, &u))
			table_tenant(&t, ctl, id, &s, &u);
	}
	return table_finish(&t, stdout);
}

int cmd_tenants(const struct ctl *ctl, int argc, char **argv)
{
	struct tenant_table t;
	int fd, err, rc;

	(void)argv;
	if (argc != 1) {
		ctl_usage("tenants", true);
		return CTL_USAGE;
	}
	rc = maps_open_checked(ctl, SLUICE_MAP_TENANTS, &fd);
	if (rc != CTL_OK)
		return rc;
	err = maps_read_tenants(fd, &t);
	close(fd);	/* an mmap outlives its fd */
	if (!err)
		err = ctl->json ? print_json(ctl, &t) : print_table(ctl, &t);
	maps_release_tenants(&t);
	if (err) {
		fprintf(stderr, "sluicectl: tenants: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}
