/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl quota show|set|reset: a tenant's limits and usage in the
 * tenant array, and the usage of its API keys and models in the quota
 * slot array.  Both are written through their mmaps, with the same atomic
 * stores and usage lock the daemon's workers use, so nothing they count
 * meanwhile is lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "maps.h"
#include "quota/quota.h"
#include "render.h"
#include "usage.h"

/* Both arrays, mapped for one command. */
struct quota_maps {
	struct sluice_tenant_state *tenants;	/* SLUICE_MAX_TENANTS */
	size_t tenants_len;
	struct sluice_quota_slot *slots;	/* SLUICE_MAX_QUOTA_SLOTS, or NULL */
	size_t slots_len;
};

static void quota_maps_release(struct quota_maps *m)
{
	if (m->tenants)
		munmap(m->tenants, m->tenants_len);
	if (m->slots)
		munmap(m->slots, m->slots_len);
	memset(m, 0, sizeof(*m));
}

/* Map the tenant array (always writable: show only reads it) and, when
 * with_slots, the quota slot array.  Returns an exit code. */
static int quota_maps_open(const struct ctl *ctl, bool with_slots, bool writable,
			   struct quota_maps *m)
{
	int fd, rc;

	memset(m, 0, sizeof(*m));
	rc = maps_open_checked(ctl, SLUICE_MAP_TENANTS, &fd);
	if (rc != CTL_OK)
		return rc;
	rc = maps_map_tenants_rw(ctl, fd, &m->tenants, &m->tenants_len);
	close(fd);	/* a mapping outlives its fd */
	if (rc != CTL_OK || !with_slots)
		return rc;
	rc = maps_open(ctl, SLUICE_MAP_QUOTA, &fd);
	if (rc == CTL_OK) {
		rc = maps_map_quota(ctl, fd, writable, &m->slots, &m->slots_len);
		close(fd);
	}
	if (rc != CTL_OK)
		quota_maps_release(m);
	return rc;
}

/* A slot of this tenant whose claim is complete (kind read with acquire:
 * its tenant and name were written before). */
static bool slot_of_tenant(const struct sluice_quota_slot *s, unsigned tenant)
{
	uint32_t kind = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE);

	return (kind == SLUICE_QUOTA_KEY || kind == SLUICE_QUOTA_MODEL) && s->tenant == tenant;
}

/* ---- show ---- */

/* One key or model scope, copied out of the slot array. */
struct scope_row {
	uint32_t kind;
	char name[SLUICE_QUOTA_NAME_LEN];
	struct sluice_limits limits;
	struct usage_view usage;
};

static int row_cmp(const void *a, const void *b)
{
	const struct scope_row *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The tenant's key and model scopes, sorted by kind and name. */
static int collect_scopes(const struct quota_maps *m, unsigned tenant, uint64_t now_ms,
			  struct scope_row **out, size_t *n)
{
	struct scope_row *rows = NULL;
	size_t count = 0, cap = 0;

	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		const struct sluice_quota_slot *s = &m->slots[i];

		if (!slot_of_tenant(s, tenant))
			continue;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct scope_row *bigger = realloc(rows, ncap * sizeof(*rows));

			if (!bigger) {
				free(rows);
				return -ENOMEM;
			}
			rows = bigger;
			cap = ncap;
		}
		rows[count].kind = s->kind;
		snprintf(rows[count].name, sizeof(rows[count].name), "%.*s",
			 (int)strnlen(s->name, sizeof(s->name)), s->name);
		limits_copy(&s->limits, &rows[count].limits);
		usage_view_of(&s->usage, now_ms, &rows[count].usage);
		count++;
	}
	if (count)
		qsort(rows, count, sizeof(*rows), row_cmp);
	*out = rows;
	*n = count;
	return 0;
}

static void show_json_scopes(struct jw *w, const char *key, const char *name_key,
			     const struct scope_row *rows, size_t n, uint32_t kind)
{
	jw_open_array(w, key);
	for (size_t i = 0; i < n; i++) {
		if (rows[i].kind != kind)
			continue;
		jw_open(w, NULL);
		jw_str(w, name_key, rows[i].name);
		usage_json(w, &rows[i].limits, &rows[i].usage);
		jw_close(w);
	}
	jw_close_array(w);
}

static int show_json(const struct ctl *ctl, unsigned id, const struct sluice_tenant_state *s,
		     const struct usage_view *u, const struct scope_row *rows, size_t n)
{
	char tmp[16];
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_u64(&w, "id", id);
	jw_str(&w, "name", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	jw_bool(&w, "configured", s->configured);
	jw_bool(&w, "blocked", s->blocked);
	usage_json(&w, &s->limits, u);
	show_json_scopes(&w, "keys", "id", rows, n, SLUICE_QUOTA_KEY);
	show_json_scopes(&w, "models", "model", rows, n, SLUICE_QUOTA_MODEL);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static void show_row(struct table *t, const char *scope, const char *name,
		     const struct sluice_limits *l, const struct usage_view *u)
{
	table_cell(t, "%s", scope);
	table_cell(t, "%s", name);
	usage_cell(t, u->requests_minute, l->requests_per_minute);
	usage_cell(t, u->tokens_minute, l->tokens_per_minute);
	usage_cell(t, u->input_tokens_minute, l->input_tokens_per_minute);
	usage_cell(t, u->output_tokens_minute, l->output_tokens_per_minute);
	usage_cell(t, u->concurrent, l->concurrent);
	usage_cell(t, u->tokens_day, l->tokens_per_day);
	usage_cell(t, u->tokens_month, l->tokens_per_month);
	table_cell(t, "%llu", (unsigned long long)u->denied);
}

static int show_table(const struct ctl *ctl, unsigned id, const struct sluice_tenant_state *s,
		      const struct usage_view *u, const struct scope_row *rows, size_t n)
{
	static const char *const heads[] = {
		"SCOPE", "NAME", "REQ/MIN", "TOK/MIN", "IN/MIN", "OUT/MIN", "INFLIGHT",
		"TOK/DAY", "TOK/MONTH", "DENIED",
	};
	enum { NCOLS = sizeof(heads) / sizeof(heads[0]) };
	char tmp[16];
	struct table t;

	printf("tenant %u (%s)%s%s\n", id, ctl_tenant_label(ctl, id, tmp, sizeof(tmp)),
	       s->configured ? "" : ", not configured", s->blocked ? ", BLOCKED" : "");
	table_init(&t, NCOLS, heads, ((1u << NCOLS) - 1) & ~3u);
	show_row(&t, "tenant", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)), &s->limits, u);
	for (size_t i = 0; i < n; i++)
		show_row(&t, rows[i].kind == SLUICE_QUOTA_KEY ? "key" : "model", rows[i].name,
			 &rows[i].limits, &rows[i].usage);
	return table_finish(&t, stdout);
}

static int quota_show(const struct ctl *ctl, unsigned id)
{
	struct quota_maps m;
	struct sluice_tenant_state s;
	struct scope_row *rows = NULL;
	struct usage_view u;
	uint64_t now_ms = ctl_now_ms();
	size_t n = 0;
	int err, rc = quota_maps_open(ctl, true, false, &m);

	if (rc != CTL_OK)
		return rc;
	s = m.tenants[id];
	limits_copy(&m.tenants[id].limits, &s.limits);
	usage_view_of(&m.tenants[id].usage, now_ms, &u);
	err = collect_scopes(&m, id, now_ms, &rows, &n);
	quota_maps_release(&m);
	if (!err)
		err = ctl->json ? show_json(ctl, id, &s, &u, rows, n)
				: show_table(ctl, id, &s, &u, rows, n);
	free(rows);
	if (err) {
		fprintf(stderr, "sluicectl: quota show: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}

/* ---- set ---- */

static void store64(__u64 *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Write the limits given on the command line, leave the others. */
static void limits_write(struct sluice_limits *l, const struct ctl *ctl)
{
	__u64 *const fields[CTL_NLIMITS] = {
		[CTL_LIM_REQUESTS_PER_MINUTE] = &l->requests_per_minute,
		[CTL_LIM_TOKENS_PER_MINUTE] = &l->tokens_per_minute,
		[CTL_LIM_INPUT_TOKENS_PER_MINUTE] = &l->input_tokens_per_minute,
		[CTL_LIM_OUTPUT_TOKENS_PER_MINUTE] = &l->output_tokens_per_minute,
		[CTL_LIM_TOKENS_PER_DAY] = &l->tokens_per_day,
		[CTL_LIM_TOKENS_PER_MONTH] = &l->tokens_per_month,
	};

	for (int i = 0; i < CTL_NLIMITS; i++) {
		if (!(ctl->limits_set & (1u << i)))
			continue;
		if (i == CTL_LIM_CONCURRENT)
			__atomic_store_n(&l->concurrent, (__u32)ctl->limits[i], __ATOMIC_RELAXED);
		else
			store64(fields[i], ctl->limits[i]);
	}
}

static int set_report(const struct ctl *ctl, unsigned id, const struct sluice_limits *l,
		      bool blocked)
{
	struct usage_view none = { 0 };
	char tmp[16];
	struct jw w;

	if (!ctl->json) {
		printf("tenant %u (%s): requests/min %llu, tokens/min %llu (input %llu, output %llu), "
		       "concurrent %u, tokens/day %llu, tokens/month %llu (0 = unlimited)%s\n",
		       id, ctl_tenant_label(ctl, id, tmp, sizeof(tmp)),
		       (unsigned long long)l->requests_per_minute,
		       (unsigned long long)l->tokens_per_minute,
		       (unsigned long long)l->input_tokens_per_minute,
		       (unsigned long long)l->output_tokens_per_minute, l->concurrent,
		       (unsigned long long)l->tokens_per_day, (unsigned long long)l->tokens_per_month,
		       blocked ? "; blocked: a token budget is spent" : "");
		return CTL_OK;
	}
	jw_init(&w);
	jw_open(&w, NULL);
	jw_u64(&w, "id", id);
	jw_str(&w, "name", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	jw_bool(&w, "blocked", blocked);
	usage_json(&w, l, &none);
	jw_close(&w);
	return jw_finish(&w, stdout) ? CTL_FAILED : CTL_OK;
}

/*
 * The new limits apply to the next request.  `blocked` follows the token
 * budgets at once: a raised budget unblocks the tenant, a lowered one
 * already spent blocks it, as the daemon would at its next release.
 */
static int quota_set(const struct ctl *ctl, unsigned id)
{
	struct quota_maps m;
	struct sluice_tenant_state *s;
	struct sluice_limits now;
	bool spent;
	char tmp[16];
	int rc = quota_maps_open(ctl, false, true, &m);

	if (rc != CTL_OK)
		return rc;
	s = &m.tenants[id];
	if (!s->configured && id != SLUICE_TENANT_ANON)
		fprintf(stderr, "sluicectl: note: tenant %s is not configured in the running "
			"sluiced\n", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	limits_write(&s->limits, ctl);
	limits_copy(&s->limits, &now);
	spent = quota_budget_spent(&s->limits, &s->usage, ctl_now_ms());
	__atomic_store_n(&s->blocked, spent ? 1u : 0u, __ATOMIC_RELAXED);
	quota_maps_release(&m);
	return set_report(ctl, id, &now, spent);
}

/* ---- reset ---- */

static int reset_report(const struct ctl *ctl, unsigned id, size_t keys, size_t models)
{
	char tmp[16];
	struct jw w;

	if (!ctl->json) {
		printf("tenant %u (%s): usage reset (tenant, %zu API key%s, %zu model%s), "
		       "unblocked\n", id, ctl_tenant_label(ctl, id, tmp, sizeof(tmp)),
		       keys, keys == 1 ? "" : "s", models, models == 1 ? "" : "s");
		return CTL_OK;
	}
	jw_init(&w);
	jw_open(&w, NULL);
	jw_u64(&w, "id", id);
	jw_str(&w, "name", ctl_tenant_label(ctl, id, tmp, sizeof(tmp)));
	jw_u64(&w, "keys_reset", keys);
	jw_u64(&w, "models_reset", models);
	jw_bool(&w, "blocked", false);
	jw_close(&w);
	return jw_finish(&w, stdout) ? CTL_FAILED : CTL_OK;
}

/* Usage of the tenant and of every key and model slot it owns, under
 * each record's usage lock (quota_reset takes it); requests in flight
 * stay counted so their release balances.  Then the tenant is unblocked. */
static int quota_reset_tenant(const struct ctl *ctl, unsigned id)
{
	struct quota_maps m;
	size_t keys = 0, models = 0;
	int rc = quota_maps_open(ctl, true, true, &m);

	if (rc != CTL_OK)
		return rc;
	quota_reset(&m.tenants[id].usage);
	for (size_t i = 0; i < SLUICE_MAX_QUOTA_SLOTS; i++) {
		struct sluice_quota_slot *s = &m.slots[i];

		if (!slot_of_tenant(s, id))
			continue;
		quota_reset(&s->usage);
		if (s->kind == SLUICE_QUOTA_KEY)
			keys++;
		else
			models++;
	}
	__atomic_store_n(&m.tenants[id].blocked, 0u, __ATOMIC_RELAXED);
	quota_maps_release(&m);
	return reset_report(ctl, id, keys, models);
}

/* ---- the command ---- */

/* The subcommand, its argument count and its options, checked before any
 * map is opened. */
static int quota_args(const struct ctl *ctl, int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "set") == 0) {
		if (ctl->limits_set)
			return CTL_OK;
		fprintf(stderr, "sluicectl: quota set: give at least one limit\n");
	} else if (argc == 3 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "reset") == 0)) {
		if (!ctl->limits_set)
			return CTL_OK;
		fprintf(stderr, "sluicectl: quota %s takes no limits (quota set does)\n", argv[1]);
	}
	ctl_usage("quota", true);
	return CTL_USAGE;
}

int cmd_quota(const struct ctl *ctl, int argc, char **argv)
{
	unsigned id = 0;
	int rc = quota_args(ctl, argc, argv);

	if (rc == CTL_OK)
		rc = ctl_tenant_arg(ctl, argv[2], &id);
	if (rc != CTL_OK)
		return rc;
	if (strcmp(argv[1], "show") == 0)
		return quota_show(ctl, id);
	if (strcmp(argv[1], "set") == 0)
		return quota_set(ctl, id);
	return quota_reset_tenant(ctl, id);
}
