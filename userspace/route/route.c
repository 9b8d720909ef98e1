/* SPDX-License-Identifier: Apache-2.0 */
#include "route/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "core/hash.h"

static uint32_t hash_name(const char *p, size_t len)
{
	return (uint32_t)fnv1a64(FNV1A64_INIT, p, len);
}

static struct route_entry *slot_for(const struct route_table *rt, const char *p,
				    size_t len, uint32_t h)
{
	unsigned mask = rt->nslots - 1;
	for (unsigned i = h & mask;; i = (i + 1) & mask) {
		struct route_entry *e = &rt->slots[i];
		if (!e->model || (e->hash == h && e->len == len && memcmp(e->model, p, len) == 0))
			return e;
	}
}

static bool is_wild(const char *model)
{
	return strcmp(model, "*") == 0;
}

/* First pass: one entry per distinct model name, counting its backends. */
static void count_models(struct route_table *rt, const struct sluice_config *cfg)
{
	for (size_t b = 0; b < cfg->nbackends; b++) {
		const struct backend_cfg *be = &cfg->backends[b];
		for (size_t m = 0; m < be->nmodels; m++) {
			const char *name = be->models[m];
			if (is_wild(name)) {
				rt->wild_count++;
				continue;
			}
			size_t len = strlen(name);
			uint32_t h = hash_name(name, len);
			struct route_entry *e = slot_for(rt, name, len, h);
			if (!e->model) {
				*e = (struct route_entry){ .model = name, .len = len, .hash = h };
				rt->nentries++;
			}
			e->count++;
		}
	}
}

/* Second pass: lay each entry's backends out contiguously in targets. */
static void fill_targets(struct route_table *rt, const struct sluice_config *cfg)
{
	unsigned next = 0;
	for (unsigned i = 0; i < rt->nslots; i++) {
		struct route_entry *e = &rt->slots[i];
		if (!e->model)
			continue;
		e->first = next;
		next += e->count;
		e->count = 0;
	}
	rt->wild_first = next;
	unsigned nwild = 0;
	for (size_t b = 0; b < cfg->nbackends; b++) {
		const struct backend_cfg *be = &cfg->backends[b];
		for (size_t m = 0; m < be->nmodels; m++) {
			const char *name = be->models[m];
			if (is_wild(name)) {
				rt->targets[rt->wild_first + nwild++] = (unsigned)b;
				continue;
			}
			size_t len = strlen(name);
			struct route_entry *e = slot_for(rt, name, len, hash_name(name, len));
			rt->targets[e->first + e->count++] = (unsigned)b;
		}
	}
}

int route_table_build(struct route_table *rt, const struct sluice_config *cfg)
{
	memset(rt, 0, sizeof(*rt));
	size_t total = 0;
	for (size_t b = 0; b < cfg->nbackends; b++)
		total += cfg->backends[b].nmodels;
	/* Load factor at most one half keeps probe runs short. */
	unsigned nslots = 8;
	while (nslots < total * 2)
		nslots *= 2;
	rt->nslots = nslots;
	rt->slots = calloc(nslots, sizeof(*rt->slots));
	rt->targets = calloc(total ? total : 1, sizeof(*rt->targets));
	if (!rt->slots || !rt->targets) {
		route_table_free(rt);
		return -ENOMEM;
	}
	rt->ntargets = (unsigned)total;
	count_models(rt, cfg);
	fill_targets(rt, cfg);
	return 0;
}

void route_table_free(struct route_table *rt)
{
	free(rt->slots);
	free(rt->targets);
	memset(rt, 0, sizeof(*rt));
}

int route_cursor_init(struct route_cursor *cur, const struct route_table *rt)
{
	cur->n = rt->nslots + 1;
	cur->next = calloc(cur->n, sizeof(*cur->next));
	return cur->next ? 0 : -ENOMEM;
}

void route_cursor_free(struct route_cursor *cur)
{
	free(cur->next);
	cur->next = NULL;
	cur->n = 0;
}

static int take_turn(const struct route_table *rt, unsigned *cursor,
		     unsigned first, unsigned count)
{
	unsigned i = *cursor;
	*cursor = i + 1 >= count ? 0 : i + 1;
	return (int)rt->targets[first + (i < count ? i : 0)];
}

int route_pick(const struct route_table *rt, struct route_cursor *cur, struct str model)
{
	if (model.len) {
		const struct route_entry *e = slot_for(rt, model.p, model.len,
						       hash_name(model.p, model.len));
		if (e->model)
			return take_turn(rt, &cur->next[e - rt->slots], e->first, e->count);
	}
	if (rt->wild_count && model.len)
		return take_turn(rt, &cur->next[rt->nslots], rt->wild_first, rt->wild_count);
	return -1;
}

static bool listed_before(const struct sluice_config *cfg, size_t b, size_t m)
{
	const char *name = cfg->backends[b].models[m];
	for (size_t pb = 0; pb <= b; pb++) {
		size_t end = pb == b ? m : cfg->backends[pb].nmodels;
		for (size_t pm = 0; pm < end; pm++)
			if (strcmp(cfg->backends[pb].models[pm], name) == 0)
				return true;
	}
	return false;
}

static int append_model(struct buf *out, const char *name, const char *owner, bool first)
{
	char id[600], own[600];
	int n = json_escape(id, sizeof(id), name, strlen(name));
	int o = json_escape(own, sizeof(own), owner, strlen(owner));
	if (n < 0 || o < 0)
		return -ENOSPC;
	return buf_printf(out, "%s{\"id\":%.*s,\"object\":\"model\",\"created\":0,\"owned_by\":%.*s}",
			  first ? "" : ",", n, id, o, own);
}

int route_models_body(const struct sluice_config *cfg, struct buf *out)
{
	return route_models_body_for(cfg, out, NULL, NULL);
}

int route_models_body_for(const struct sluice_config *cfg, struct buf *out,
			  bool (*allowed)(const char *model, void *arg), void *arg)
{
	int err = buf_append_str(out, STR_LIT("{\"object\":\"list\",\"data\":["));
	bool first = true;
	for (size_t b = 0; !err && b < cfg->nbackends; b++) {
		const struct backend_cfg *be = &cfg->backends[b];
		for (size_t m = 0; !err && m < be->nmodels; m++) {
			if (is_wild(be->models[m]) || listed_before(cfg, b, m))
				continue;
			if (allowed && !allowed(be->models[m], arg))
				continue;
			err = append_model(out, be->models[m], be->name, first);
			first = false;
		}
	}
	return err ? err : buf_append_str(out, STR_LIT("]}"));
}
