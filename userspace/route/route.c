/* SPDX-License-Identifier: Apache-2.0 */
#include "route/route.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "core/hash.h"

#define NS_PER_MS	1000000ull
#define NS_PER_S	1000000000ull

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

/* ---- building ---- */

/* Sizes first: routes (explicit, one implicit per distinct backend model,
 * "*"), and arms. */
struct build {
	struct route_table *rt;
	const struct sluice_config *cfg;
	unsigned next_arm;
};

static bool named_before(const struct sluice_config *cfg, size_t b, size_t m);

static int add_arm(struct build *bd, struct route_arm *a, unsigned backend, const char *model,
		   unsigned weight, bool fallback, unsigned pos)
{
	*a = (struct route_arm){ .backend = backend, .id = bd->next_arm++, .pos = pos,
				 .fallback = fallback, .model = model, .weight = weight,
				 .cfg_weight = weight };
	if (!model)
		return 0;
	size_t cap = strlen(model) * 6 + 3;
	if (!(a->model_json = malloc(cap)))
		return -ENOMEM;
	int n = json_escape(a->model_json, cap, model, strlen(model));
	if (n < 0)
		return -ENOMEM;
	a->model_json_len = (size_t)n;
	return 0;
}

/* Link def into the name table: the first route of a name owns the slot,
 * later ones (after a match) chain behind it in file order. */
static void index_route(struct route_table *rt, unsigned r)
{
	struct route_def *d = &rt->defs[r];
	uint32_t h = hash_name(d->name, d->len);
	struct route_entry *e = slot_for(rt, d->name, d->len, h);
	if (!e->model) {
		*e = (struct route_entry){ .model = d->name, .len = d->len, .hash = h, .route = r };
		rt->nentries++;
		return;
	}
	struct route_def *last = &rt->defs[e->route];
	while (last->next >= 0)
		last = &rt->defs[last->next];
	last->next = (int)r;
}

static int build_explicit(struct build *bd, const struct route_cfg *rc, unsigned r)
{
	struct route_table *rt = bd->rt;
	struct route_def *d = &rt->defs[r];
	*d = (struct route_def){ .name = rc->model, .len = strlen(rc->model), .index = r,
				 .cfg = rc, .next = -1, .narms = (unsigned)rc->ntargets,
				 .nfallback = (unsigned)rc->nfallback };
	d->arms = &rt->arms[bd->next_arm];
	d->fallback = d->arms + d->narms;
	int err = 0;
	for (unsigned i = 0; !err && i < d->narms; i++)
		err = add_arm(bd, &d->arms[i], rc->targets[i].backend, rc->targets[i].model,
			      rc->targets[i].weight, false, i);
	for (unsigned i = 0; !err && i < d->nfallback; i++) {
		err = add_arm(bd, &d->fallback[i], rc->fallback[i].backend, rc->fallback[i].model,
			      1, true, d->narms + i);
		d->fallback[i].context_fallback = rc->fallback[i].context_fallback;
	}
	return err;
}

/* An implicit route: every backend that lists `name` (or "*"), weight 1. */
static int build_implicit(struct build *bd, const char *name, unsigned r)
{
	struct route_table *rt = bd->rt;
	const struct sluice_config *cfg = bd->cfg;
	struct route_def *d = &rt->defs[r];
	*d = (struct route_def){ .name = name, .len = strlen(name), .index = r,
				 .implicit = true, .next = -1 };
	d->arms = &rt->arms[bd->next_arm];
	for (size_t b = 0; b < cfg->nbackends; b++)
		for (size_t m = 0; m < cfg->backends[b].nmodels; m++)
			if (strcmp(cfg->backends[b].models[m], name) == 0) {
				add_arm(bd, &d->arms[d->narms], (unsigned)b, NULL, 1, false, d->narms);
				d->narms++;
			}
	d->fallback = d->arms + d->narms;
	return 0;
}

static void count(const struct sluice_config *cfg, unsigned *nroutes, unsigned *narms)
{
	*nroutes = (unsigned)cfg->nroutes;
	*narms = 0;
	for (size_t r = 0; r < cfg->nroutes; r++)
		*narms += (unsigned)(cfg->routes[r].ntargets + cfg->routes[r].nfallback);
	for (size_t b = 0; b < cfg->nbackends; b++) {
		*narms += (unsigned)cfg->backends[b].nmodels;
		for (size_t m = 0; m < cfg->backends[b].nmodels; m++)
			*nroutes += !named_before(cfg, b, m);
	}
}

int route_table_build(struct route_table *rt, const struct sluice_config *cfg)
{
	memset(rt, 0, sizeof(*rt));
	rt->wild = -1;
	rt->cfg = cfg;
	unsigned nroutes, narms;
	count(cfg, &nroutes, &narms);
	/* Load factor at most one half keeps probe runs short. */
	unsigned nslots = 8;
	while (nslots < nroutes * 2)
		nslots *= 2;
	rt->nslots = nslots;
	rt->slots = calloc(nslots, sizeof(*rt->slots));
	rt->defs = calloc(nroutes ? nroutes : 1, sizeof(*rt->defs));
	rt->arms = calloc(narms ? narms : 1, sizeof(*rt->arms));
	if (!rt->slots || !rt->defs || !rt->arms) {
		route_table_free(rt);
		return -ENOMEM;
	}
	struct build bd = { .rt = rt, .cfg = cfg };
	int err = 0;
	unsigned r = 0;
	for (size_t i = 0; !err && i < cfg->nroutes; i++, r++) {
		err = build_explicit(&bd, &cfg->routes[i], r);
		rt->ndefs = r + 1;
		index_route(rt, r);
	}
	/* Implicit routes chain behind explicit ones of the same name: a
	 * route with a match that does not match falls back to the backends
	 * that list the name. */
	for (size_t b = 0; !err && b < cfg->nbackends; b++) {
		for (size_t m = 0; !err && m < cfg->backends[b].nmodels; m++) {
			if (named_before(cfg, b, m))
				continue;
			const char *name = cfg->backends[b].models[m];
			err = build_implicit(&bd, name, r);
			rt->ndefs = r + 1;
			if (is_wild(name))
				rt->wild = (int)r;
			else
				index_route(rt, r);
			r++;
		}
	}
	rt->narms = bd.next_arm;
	if (err)
		route_table_free(rt);
	return err;
}

void route_table_free(struct route_table *rt)
{
	for (unsigned i = 0; rt->arms && i < rt->narms; i++)
		free(rt->arms[i].model_json);
	free(rt->slots);
	free(rt->defs);
	free(rt->arms);
	memset(rt, 0, sizeof(*rt));
	rt->wild = -1;
}

int route_cursor_init(struct route_cursor *cur, const struct route_table *rt)
{
	cur->narms = rt->narms;
	cur->nroutes = rt->ndefs;
	cur->cfg = rt->cfg;
	cur->nbackends = rt->cfg ? (unsigned)rt->cfg->nbackends : 0;
	cur->health = NULL;
	cur->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)cur;
	cur->arms = calloc(rt->narms ? rt->narms : 1, sizeof(*cur->arms));
	cur->budgets = calloc(rt->ndefs ? rt->ndefs : 1, sizeof(*cur->budgets));
	cur->backends = calloc(cur->nbackends ? cur->nbackends : 1, sizeof(*cur->backends));
	if (cur->arms && cur->budgets && cur->backends)
		return 0;
	route_cursor_free(cur);
	return -ENOMEM;
}

void route_cursor_free(struct route_cursor *cur)
{
	free(cur->arms);
	free(cur->budgets);
	free(cur->backends);
	memset(cur, 0, sizeof(*cur));
}

/* ---- finding the route ---- */

static bool header_is(const struct route_ctx *ctx, const char *name, const char *value)
{
	const struct http_header *h = http_find_header(ctx->headers, ctx->nheaders, name);
	return h && str_eq_cstr(h->value, value);
}

static bool route_matches(const struct route_def *d, const struct route_ctx *ctx)
{
	const struct route_cfg *c = d->cfg;
	if (!c)
		return true;
	if (c->match_header && !header_is(ctx, c->match_header, c->match_value))
		return false;
	if (c->match_tenant && (!ctx->tenant || strcmp(ctx->tenant, c->match_tenant)))
		return false;
	return true;
}

const struct route_def *route_find(const struct route_table *rt, const struct route_ctx *ctx)
{
	if (!ctx->model.len)
		return NULL;
	const struct route_entry *e = slot_for(rt, ctx->model.p, ctx->model.len,
					       hash_name(ctx->model.p, ctx->model.len));
	for (int r = e->model ? (int)e->route : -1; r >= 0; r = rt->defs[r].next)
		if (route_matches(&rt->defs[r], ctx))
			return &rt->defs[r];
	return rt->wild >= 0 ? &rt->defs[rt->wild] : NULL;
}

const struct route_def *route_by_name(const struct route_table *rt, const char *name, size_t len)
{
	if (!len)
		return NULL;
	const struct route_entry *e = slot_for(rt, name, len, hash_name(name, len));
	return e->model ? &rt->defs[e->route] : NULL;
}

struct route_arm *route_arm_by_backend(const struct route_table *rt, const struct route_def *def,
				       const char *backend, size_t len)
{
	for (unsigned i = 0; i < def->narms; i++) {
		const char *name = rt->cfg->backends[def->arms[i].backend].name;
		if (strlen(name) == len && memcmp(name, backend, len) == 0)
			return &def->arms[i];
	}
	return NULL;
}

/* ---- health ---- */

static unsigned live_weight(const struct route_arm *a)
{
	return __atomic_load_n(&a->weight, __ATOMIC_RELAXED);
}

static bool breaker_allows(enum route_breaker b, bool probing, uint64_t open_until,
			   uint64_t now)
{
	switch (b) {
	case ROUTE_BREAKER_OPEN:
		return now >= open_until;	/* time for a probe */
	case ROUTE_BREAKER_HALF_OPEN:
		return !probing;
	default:
		return true;
	}
}

bool route_arm_available(const struct route_cursor *cur, const struct route_def *def,
			 const struct route_arm *arm, uint64_t now)
{
	(void)def;
	const struct route_arm_state *s = &cur->arms[arm->id];
	if (s->busy_until > now || !health_up(cur->health, arm->backend))
		return false;
	if (arm->backend < cur->nbackends) {
		const struct route_backend_state *b = &cur->backends[arm->backend];
		if (!breaker_allows(b->breaker, b->probing, b->open_until, now))
			return false;
	}
	return breaker_allows(s->breaker, s->probing, s->open_until, now);
}

static void count_up(uint64_t *c)
{
	__atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

void route_attempt_start(struct route_cursor *cur, const struct route_arm *arm)
{
	struct route_arm_state *s = &cur->arms[arm->id];
	s->inflight++;
	count_up(&s->requests);
	/* An open breaker whose time is up lets this one request through. */
	if (s->breaker == ROUTE_BREAKER_OPEN)
		s->breaker = ROUTE_BREAKER_HALF_OPEN;
	if (s->breaker == ROUTE_BREAKER_HALF_OPEN)
		s->probing = true;
	if (arm->backend < cur->nbackends) {
		struct route_backend_state *b = &cur->backends[arm->backend];
		if (b->breaker == ROUTE_BREAKER_OPEN)
			b->breaker = ROUTE_BREAKER_HALF_OPEN;
		if (b->breaker == ROUTE_BREAKER_HALF_OPEN)
			b->probing = true;
	}
}

/* The backend's own breaker: failures in a row, or (error_percent) the
 * share of failures among at least min_requests attempts of the window. */
static void backend_attempt_end(struct route_cursor *cur, unsigned backend, bool ok,
				uint64_t now)
{
	if (backend >= cur->nbackends)
		return;
	const struct backend_cfg *be = &cur->cfg->backends[backend];
	struct route_backend_state *s = &cur->backends[backend];
	bool probe = s->breaker == ROUTE_BREAKER_HALF_OPEN;
	s->probing = false;
	if (now - s->win_start >= be->br_window_ms * NS_PER_MS) {
		s->win_start = now;
		s->win_requests = s->win_errors = 0;
	}
	if (s->win_requests < UINT32_MAX)
		s->win_requests++;
	if (ok) {
		s->fails = 0;
		__atomic_store_n(&s->breaker, ROUTE_BREAKER_CLOSED, __ATOMIC_RELAXED);
		return;
	}
	if (s->win_errors < UINT32_MAX)
		s->win_errors++;
	if (s->fails < UINT32_MAX)
		s->fails++;
	bool trip = probe || (be->br_failures && s->fails >= be->br_failures) ||
		    (be->br_error_percent && s->win_requests >= be->br_min_requests &&
		     (uint64_t)s->win_errors * 100 >=
			     (uint64_t)be->br_error_percent * s->win_requests);
	if (!trip)
		return;
	__atomic_store_n(&s->open_until, now + be->br_open_ms * NS_PER_MS, __ATOMIC_RELAXED);
	__atomic_store_n(&s->breaker, ROUTE_BREAKER_OPEN, __ATOMIC_RELAXED);
	count_up(&s->opened);
	s->fails = 0;
	s->win_start = now;
	s->win_requests = s->win_errors = 0;
}

void route_attempt_end(struct route_cursor *cur, const struct route_def *def,
		       const struct route_arm *arm, bool ok, uint64_t latency_ns, uint64_t now)
{
	struct route_arm_state *s = &cur->arms[arm->id];
	const struct route_cfg *c = def->cfg;
	if (s->inflight)
		s->inflight--;
	backend_attempt_end(cur, arm->backend, ok, now);
	/* Peak EWMA: a slower sample counts at once, a faster one decays in. */
	if (ok)
		s->ewma_ns = latency_ns > s->ewma_ns ? latency_ns
			   : s->ewma_ns - (s->ewma_ns - latency_ns) / 8;
	bool probe = s->breaker == ROUTE_BREAKER_HALF_OPEN;
	s->probing = false;
	if (ok) {
		s->fails = 0;
		s->breaker = ROUTE_BREAKER_CLOSED;
		return;
	}
	count_up(&s->failures);
	if (s->fails < UINT32_MAX)
		s->fails++;
	if (!c || !c->breaker_failures)
		return;
	if (probe || s->fails >= c->breaker_failures) {
		s->breaker = ROUTE_BREAKER_OPEN;
		s->open_until = now + c->breaker_open_ms * NS_PER_MS;
	}
}

static void add_to(uint64_t *c, uint64_t v)
{
	uint64_t n = *c + v;
	__atomic_store_n(c, n < *c ? UINT64_MAX : n, __ATOMIC_RELAXED);
}

void route_exchange_done(struct route_cursor *cur, const struct route_arm *arm,
			 const struct route_outcome *o)
{
	struct route_arm_stats *st = &cur->arms[arm->id].st;
	count_up(&st->responses);
	if (o->error)
		count_up(&st->errors);
	count_up(&st->lat[metrics_bucket_of(o->latency_ns)]);
	add_to(&st->lat_sum_ns, o->latency_ns);
	if (o->ttft_ns) {
		count_up(&st->ttft[metrics_bucket_of(o->ttft_ns)]);
		add_to(&st->ttft_sum_ns, o->ttft_ns);
	}
	if (o->tokens_in > 0)
		add_to(&st->tokens_in, (uint64_t)o->tokens_in);
	if (o->tokens_out > 0)
		add_to(&st->tokens_out, (uint64_t)o->tokens_out);
}

void route_arm_busy(struct route_cursor *cur, const struct route_arm *arm, uint64_t until)
{
	struct route_arm_state *s = &cur->arms[arm->id];
	if (until > s->busy_until)
		s->busy_until = until;
}

/* ---- the retry budget ---- */

static struct route_budget *budget_at(struct route_cursor *cur, const struct route_def *def,
				      uint64_t now)
{
	struct route_budget *b = &cur->budgets[def->index];
	uint64_t sec = now / NS_PER_S;
	/* Clear the buckets of the seconds that passed since the last use. */
	for (uint64_t s = b->second + 1; s <= sec && s <= b->second + ROUTE_BUDGET_SECONDS; s++) {
		b->requests[s % ROUTE_BUDGET_SECONDS] = 0;
		b->retries[s % ROUTE_BUDGET_SECONDS] = 0;
	}
	if (sec > b->second)
		b->second = sec;
	return b;
}

void route_budget_request(struct route_cursor *cur, const struct route_def *def, uint64_t now)
{
	struct route_budget *b = budget_at(cur, def, now);
	uint32_t *n = &b->requests[b->second % ROUTE_BUDGET_SECONDS];
	if (*n < UINT32_MAX)
		(*n)++;
}

bool route_budget_take_retry(struct route_cursor *cur, const struct route_def *def, uint64_t now)
{
	const struct route_cfg *c = def->cfg;
	if (!c)
		return false;
	struct route_budget *b = budget_at(cur, def, now);
	uint64_t req = 0, ret = 0;
	for (unsigned i = 0; i < ROUTE_BUDGET_SECONDS; i++) {
		req += b->requests[i];
		ret += b->retries[i];
	}
	/* retries <= percent of requests + min per second of the window */
	uint64_t allowed = req * c->retry_percent / 100 +
			   (uint64_t)c->retry_min * ROUTE_BUDGET_SECONDS;
	if (ret >= allowed) {
		count_up(&b->exhausted);
		return false;
	}
	uint32_t *n = &b->retries[b->second % ROUTE_BUDGET_SECONDS];
	if (*n < UINT32_MAX)
		(*n)++;
	return true;
}

/* ---- backoff ---- */

static uint64_t next_random(struct route_cursor *cur)
{
	uint64_t x = cur->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return cur->rng = x;
}

uint64_t route_backoff_ns(struct route_cursor *cur, const struct route_def *def, unsigned n)
{
	const struct route_cfg *c = def->cfg;
	if (!c || !c->backoff_base_ms || !n)
		return 0;
	uint64_t max = (uint64_t)(c->backoff_max_ms > c->backoff_base_ms ? c->backoff_max_ms
									 : c->backoff_base_ms) * NS_PER_MS;
	/* base * 2^(n-1), saturating at max (n is small, but untrusted-proof) */
	uint64_t d = (uint64_t)c->backoff_base_ms * NS_PER_MS;
	for (unsigned i = 1; i < n && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d / 2 + next_random(cur) % (d / 2 + 1);
}

/* ---- choosing an arm ---- */

/* Smooth weighted round robin (nginx): every candidate gains its weight,
 * the richest is chosen and pays the total.  Over any run of sum(weights)
 * choices each arm is chosen exactly its weight's times, interleaved. */
static const struct route_arm *choose_weighted(struct route_cursor *cur,
					       const struct route_def *d, const bool *ok)
{
	const struct route_arm *best = NULL;
	int64_t total = 0;
	for (unsigned i = 0; i < d->narms; i++) {
		if (!ok[i])
			continue;
		struct route_arm_state *s = &cur->arms[d->arms[i].id];
		int64_t w = live_weight(&d->arms[i]);
		s->current += w;
		total += w;
		if (!best || s->current > cur->arms[best->id].current)
			best = &d->arms[i];
	}
	if (best)
		cur->arms[best->id].current -= total;
	return best;
}

/* Least in flight per weight, or (peak_ewma) latency x (in flight + 1) per
 * weight; ties go round in turn. */
static const struct route_arm *choose_least(struct route_cursor *cur, const struct route_def *d,
					    const bool *ok, bool ewma)
{
	const struct route_arm *best = NULL;
	double best_cost = 0;
	unsigned start = cur->budgets[d->index].rr++;
	for (unsigned k = 0; k < d->narms; k++) {
		unsigned i = (start + k) % d->narms;
		if (!ok[i])
			continue;
		const struct route_arm_state *s = &cur->arms[d->arms[i].id];
		double load = (double)s->inflight + 1.0;
		if (ewma)
			load *= (double)(s->ewma_ns ? s->ewma_ns : 1);
		double cost = load / (double)live_weight(&d->arms[i]);
		if (!best || cost < best_cost) {
			best = &d->arms[i];
			best_cost = cost;
		}
	}
	return best;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Weighted rendezvous hashing: each arm scores w / -ln(u(key, arm)) and the
 * best wins.  A key stays on its arm while that arm is up; changing one
 * arm's weight moves only the keys that arm gains or loses. */
static const struct route_arm *choose_sticky(const struct route_def *d, const bool *ok,
					     struct str key)
{
	uint64_t kh = fnv1a64(FNV1A64_INIT, key.p, key.len);
	const struct route_arm *best = NULL;
	double best_score = 0;
	for (unsigned i = 0; i < d->narms; i++) {
		if (!ok[i])
			continue;
		uint64_t h = mix64(kh ^ mix64(d->arms[i].pos + 1));
		double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;	/* (0,1) */
		double score = (double)live_weight(&d->arms[i]) / -log(u);
		if (!best || score > best_score) {
			best = &d->arms[i];
			best_score = score;
		}
	}
	return best;
}

static struct str sticky_key(const struct route_def *d, const struct route_ctx *ctx)
{
	const struct route_cfg *c = d->cfg;
	if (!c)
		return STR_NULL;
	switch (c->sticky) {
	case ROUTE_STICKY_HEADER: {
		const struct http_header *h = http_find_header(ctx->headers, ctx->nheaders,
							       c->sticky_header);
		return h ? h->value : STR_NULL;
	}
	case ROUTE_STICKY_API_KEY:
		return ctx->key_id;
	case ROUTE_STICKY_TENANT:
		return ctx->tenant ? str_from(ctx->tenant) : STR_NULL;
	default:
		return STR_NULL;
	}
}

#define ROUTE_MAX_ARMS	64

const struct route_arm *route_choose(const struct route_table *rt, struct route_cursor *cur,
				     const struct route_def *d, const struct route_ctx *ctx,
				     uint64_t now)
{
	(void)rt;
	bool ok[ROUTE_MAX_ARMS];
	unsigned n = d->narms < ROUTE_MAX_ARMS ? d->narms : ROUTE_MAX_ARMS, healthy = 0, weighted = 0;
	for (unsigned i = 0; i < n; i++) {
		bool w = live_weight(&d->arms[i]) > 0;
		ok[i] = w && route_arm_available(cur, d, &d->arms[i], now);
		weighted += w;
		healthy += ok[i];
	}
	if (!weighted)
		return NULL;
	/* Every arm down: try them anyway rather than refuse. */
	if (!healthy)
		for (unsigned i = 0; i < n; i++)
			ok[i] = live_weight(&d->arms[i]) > 0;
	struct str key = ctx ? sticky_key(d, ctx) : STR_NULL;
	if (key.len)
		return choose_sticky(d, ok, key);
	enum route_balance_cfg bal = d->cfg ? d->cfg->balance : ROUTE_BALANCE_WEIGHTED;
	if (bal == ROUTE_BALANCE_WEIGHTED)
		return choose_weighted(cur, d, ok);
	return choose_least(cur, d, ok, bal == ROUTE_BALANCE_PEAK_EWMA);
}

const struct route_arm *route_next(struct route_cursor *cur, const struct route_def *d,
				   const struct route_arm *prev, uint64_t now)
{
	unsigned from = prev->fallback ? (unsigned)(prev - d->fallback) + 1 : 0;
	for (unsigned i = from; i < d->nfallback; i++)
		if (route_arm_available(cur, d, &d->fallback[i], now))
			return &d->fallback[i];
	return NULL;
}

const struct route_arm *route_next_context(struct route_cursor *cur, const struct route_def *d,
					   const struct route_arm *prev, uint64_t now)
{
	unsigned from = prev->fallback ? (unsigned)(prev - d->fallback) + 1 : 0;
	for (unsigned i = from; i < d->nfallback; i++)
		if (d->fallback[i].context_fallback &&
		    route_arm_available(cur, d, &d->fallback[i], now))
			return &d->fallback[i];
	return NULL;
}

int route_pick(const struct route_table *rt, struct route_cursor *cur, struct str model)
{
	struct route_ctx ctx = { .model = model };
	const struct route_def *d = route_find(rt, &ctx);
	const struct route_arm *a = d ? route_choose(rt, cur, d, NULL, 0) : NULL;
	return a ? (int)a->backend : -1;
}

/* ---- /v1/models ---- */

/* An earlier backend (or this one, earlier) lists the same name. */
static bool named_before(const struct sluice_config *cfg, size_t b, size_t m)
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

static bool is_route_name(const struct sluice_config *cfg, const char *name, size_t before)
{
	for (size_t r = 0; r < before; r++)
		if (strcmp(cfg->routes[r].model, name) == 0)
			return true;
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
	for (size_t r = 0; !err && r < cfg->nroutes; r++) {
		const char *name = cfg->routes[r].model;
		if (is_route_name(cfg, name, r) || (allowed && !allowed(name, arg)))
			continue;
		err = append_model(out, name, "sluice", first);
		first = false;
	}
	for (size_t b = 0; !err && b < cfg->nbackends; b++) {
		const struct backend_cfg *be = &cfg->backends[b];
		for (size_t m = 0; !err && m < be->nmodels; m++) {
			if (is_wild(be->models[m]) || named_before(cfg, b, m) ||
			    is_route_name(cfg, be->models[m], cfg->nroutes))
				continue;
			if (allowed && !allowed(be->models[m], arg))
				continue;
			err = append_model(out, be->models[m], be->name, first);
			first = false;
		}
	}
	return err ? err : buf_append_str(out, STR_LIT("]}"));
}

/* ---- carrying state across a reload ---- */

static bool same_model(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The arm of `from` that is the same target as `a` of `to`: same place
 * (arm or fallback), backend name and model; or NULL. */
static const struct route_arm *arm_twin(const struct route_table *to, const struct route_arm *a,
					const struct route_table *from, const struct route_def *fd)
{
	const char *bname = to->cfg->backends[a->backend].name;
	const struct route_arm *list = a->fallback ? fd->fallback : fd->arms;
	unsigned n = a->fallback ? fd->nfallback : fd->narms;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(from->cfg->backends[list[i].backend].name, bname) == 0 &&
		    same_model(list[i].model, a->model))
			return &list[i];
	return NULL;
}

static void carry_route(struct route_cursor *dst, const struct route_table *dt,
			const struct route_def *dd, const struct route_cursor *src,
			const struct route_table *st, const struct route_def *sd)
{
	dst->budgets[dd->index] = src->budgets[sd->index];
	for (unsigned i = 0; i < dd->narms + dd->nfallback; i++) {
		const struct route_arm *a = &dd->arms[i];	/* fallback follows arms */
		const struct route_arm *twin = arm_twin(dt, a, st, sd);
		if (!twin)
			continue;
		struct route_arm_state s = src->arms[twin->id];
		/* Requests in flight end on the old table's cursor. */
		s.inflight = 0;
		s.probing = false;
		dst->arms[a->id] = s;
	}
}

void route_cursor_carry(struct route_cursor *dst, const struct route_table *dt,
			const struct route_cursor *src, const struct route_table *st)
{
	for (unsigned r = 0; r < dt->ndefs; r++) {
		const struct route_def *dd = &dt->defs[r];
		/* The same route: the same name, and the same place among the
		 * routes of that name (routes with a match chain in file order). */
		unsigned nth = 0;
		for (unsigned k = 0; k < r; k++)
			nth += dt->defs[k].len == dd->len && memcmp(dt->defs[k].name, dd->name, dd->len) == 0;
		for (unsigned k = 0; k < st->ndefs; k++) {
			const struct route_def *sd = &st->defs[k];
			if (sd->len != dd->len || memcmp(sd->name, dd->name, dd->len) != 0 ||
			    sd->implicit != dd->implicit)
				continue;
			if (nth-- == 0) {
				carry_route(dst, dt, dd, src, st, sd);
				break;
			}
		}
	}
}
