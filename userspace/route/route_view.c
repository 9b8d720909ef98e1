/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator's view of the routes: GET /admin/routes (JSON) and the
 * sluice_route_* series of /metrics.  Off the request path: worker 0
 * renders it, reading the other workers' counters with relaxed loads.
 */
#include <inttypes.h>
#include <string.h>

#include "api/json.h"
#include "route/route.h"

struct arm_sum {
	uint64_t requests, failures, fallbacks;
	unsigned inflight, open, half_open;
	struct route_arm_stats st;	/* summed */
};

static void sum_stats(struct route_arm_stats *to, const struct route_arm_stats *from)
{
	to->responses += __atomic_load_n(&from->responses, __ATOMIC_RELAXED);
	to->errors += __atomic_load_n(&from->errors, __ATOMIC_RELAXED);
	for (unsigned b = 0; b < METRICS_BUCKETS; b++) {
		to->lat[b] += __atomic_load_n(&from->lat[b], __ATOMIC_RELAXED);
		to->ttft[b] += __atomic_load_n(&from->ttft[b], __ATOMIC_RELAXED);
	}
	to->lat_sum_ns += __atomic_load_n(&from->lat_sum_ns, __ATOMIC_RELAXED);
	to->ttft_sum_ns += __atomic_load_n(&from->ttft_sum_ns, __ATOMIC_RELAXED);
	to->tokens_in += __atomic_load_n(&from->tokens_in, __ATOMIC_RELAXED);
	to->tokens_out += __atomic_load_n(&from->tokens_out, __ATOMIC_RELAXED);
}

static uint64_t hist_count(const uint64_t *h)
{
	uint64_t n = 0;
	for (unsigned b = 0; b < METRICS_BUCKETS; b++)
		n += h[b];
	return n;
}

/* The median in ms estimated as Prometheus' histogram_quantile does:
 * linear within the bucket that holds it (the +Inf bucket answers its
 * lower bound).  -1 with no samples. */
static double hist_p50_ms(const uint64_t *h)
{
	uint64_t n = hist_count(h), cum = 0;
	if (!n)
		return -1;
	double rank = (double)n / 2;
	for (unsigned b = 0; b < METRICS_BUCKETS; b++) {
		if ((double)(cum + h[b]) < rank) {
			cum += h[b];
			continue;
		}
		double lo = b ? (double)metrics_bucket_bound_ns[b - 1] : 0;
		if (b == METRICS_BUCKETS - 1)
			return lo / 1e6;
		double hi = (double)metrics_bucket_bound_ns[b];
		return (lo + (hi - lo) * (rank - (double)cum) / (double)h[b]) / 1e6;
	}
	return -1;
}

static double avg_ms(uint64_t sum_ns, uint64_t n)
{
	return n ? (double)sum_ns / (double)n / 1e6 : -1;
}

static void sum_arm(const struct route_arm *a, struct route_cursor *const *cursors, unsigned n,
		    uint64_t now, struct arm_sum *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n; i++) {
		const struct route_arm_state *st = &cursors[i]->arms[a->id];
		s->requests += __atomic_load_n(&st->requests, __ATOMIC_RELAXED);
		s->failures += __atomic_load_n(&st->failures, __ATOMIC_RELAXED);
		s->fallbacks += __atomic_load_n(&st->fallbacks_from, __ATOMIC_RELAXED);
		s->inflight += __atomic_load_n(&st->inflight, __ATOMIC_RELAXED);
		sum_stats(&s->st, &st->st);
		enum route_breaker b = __atomic_load_n(&st->breaker, __ATOMIC_RELAXED);
		uint64_t until = __atomic_load_n(&st->open_until, __ATOMIC_RELAXED);
		/* An open breaker whose time is up waits for its probe. */
		s->open += b == ROUTE_BREAKER_OPEN && until > now;
		s->half_open += b == ROUTE_BREAKER_HALF_OPEN ||
				(b == ROUTE_BREAKER_OPEN && until <= now);
	}
}

static unsigned backend_open(struct route_cursor *const *cursors, unsigned n, unsigned b,
			     uint64_t now, uint64_t *opened);

static int put_json_str(struct buf *out, const char *s)
{
	size_t cap = strlen(s) * 6 + 3;
	int err = buf_reserve(out, cap);
	if (err)
		return err;
	int n = json_escape(buf_tail(out), cap, s, strlen(s));
	if (n < 0)
		return n;
	out->len += (size_t)n;
	return 0;
}

static const char *breaker_name(const struct arm_sum *s)
{
	return s->open ? "open" : s->half_open ? "half_open" : "closed";
}

static int render_arm(const struct route_table *rt, const struct route_arm *a,
		      struct route_cursor *const *cursors, unsigned n, uint64_t now,
		      struct buf *out, bool first)
{
	struct arm_sum s;
	sum_arm(a, cursors, n, now, &s);
	int err = buf_printf(out, "%s{\"backend\":", first ? "" : ",");
	if (!err)
		err = put_json_str(out, rt->cfg->backends[a->backend].name);
	if (!err)
		err = buf_printf(out, ",\"model\":");
	if (!err)
		err = a->model ? put_json_str(out, a->model) : buf_printf(out, "null");
	if (!err)
		err = buf_printf(out, ",\"weight\":%u,\"configured_weight\":%u,\"requests\":%" PRIu64
				 ",\"failures\":%" PRIu64 ",\"fallbacks\":%" PRIu64
				 ",\"in_flight\":%u,\"breaker\":\"%s\",\"workers_open\":%u",
				 __atomic_load_n(&a->weight, __ATOMIC_RELAXED), a->cfg_weight,
				 s.requests, s.failures, s.fallbacks, s.inflight, breaker_name(&s),
				 s.open);
	/* the canary's numbers, to compare with its baseline (-1: no sample) */
	if (!err)
		err = buf_printf(out, ",\"responses\":%" PRIu64 ",\"errors\":%" PRIu64
				 ",\"latency_avg_ms\":%.3f,\"latency_p50_ms\":%.3f"
				 ",\"ttft_avg_ms\":%.3f,\"ttft_p50_ms\":%.3f"
				 ",\"input_tokens\":%" PRIu64 ",\"output_tokens\":%" PRIu64,
				 s.st.responses, s.st.errors,
				 avg_ms(s.st.lat_sum_ns, hist_count(s.st.lat)), hist_p50_ms(s.st.lat),
				 avg_ms(s.st.ttft_sum_ns, hist_count(s.st.ttft)),
				 hist_p50_ms(s.st.ttft), s.st.tokens_in, s.st.tokens_out);
	/* the backend's own state: its active checks and its breaker */
	const struct health *h = n ? cursors[0]->health : NULL;
	bool checked = h && a->backend < h->n && h->t[a->backend].checked;
	if (!err)
		err = buf_printf(out, ",\"health\":\"%s\",\"backend_breaker_open\":%u}",
				 !checked ? "unchecked" : health_up(h, a->backend) ? "up" : "down",
				 backend_open(cursors, n, a->backend, now, NULL));
	return err;
}

static const char *balance_name(const struct route_def *d)
{
	static const char *const names[] = { "weighted", "least_inflight", "peak_ewma" };
	return names[d->cfg ? d->cfg->balance : ROUTE_BALANCE_WEIGHTED];
}

static int render_route(const struct route_table *rt, const struct route_def *d,
			struct route_cursor *const *cursors, unsigned n, uint64_t now,
			struct buf *out, bool first)
{
	int err = buf_printf(out, "%s{\"model\":", first ? "" : ",");
	if (!err)
		err = put_json_str(out, d->name);
	if (!err)
		err = buf_printf(out, ",\"implicit\":%s,\"balance\":\"%s\",\"arms\":[",
				 d->implicit ? "true" : "false", balance_name(d));
	for (unsigned i = 0; !err && i < d->narms; i++)
		err = render_arm(rt, &d->arms[i], cursors, n, now, out, i == 0);
	if (!err)
		err = buf_printf(out, "],\"fallback\":[");
	for (unsigned i = 0; !err && i < d->nfallback; i++)
		err = render_arm(rt, &d->fallback[i], cursors, n, now, out, i == 0);
	uint64_t exhausted = 0;
	for (unsigned i = 0; i < n; i++)
		exhausted += __atomic_load_n(&cursors[i]->budgets[d->index].exhausted,
					     __ATOMIC_RELAXED);
	if (!err)
		err = buf_printf(out, "],\"retry_budget_exhausted\":%" PRIu64 "}", exhausted);
	return err;
}

int route_render_json(const struct route_table *rt, struct route_cursor *const *cursors,
		      unsigned n, uint64_t now, struct buf *out)
{
	int err = buf_printf(out, "{\"routes\":[");
	for (unsigned r = 0; !err && r < rt->ndefs; r++)
		err = render_route(rt, &rt->defs[r], cursors, n, now, out, r == 0);
	return err ? err : buf_printf(out, "]}\n");
}

/* Label values: route and backend names, escaped as Prometheus wants
 * (backslash, quote, newline). */
static int put_label(struct buf *out, const char *s)
{
	int err = 0;
	for (; !err && *s; s++) {
		if (*s == '\\' || *s == '"')
			err = buf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			err = buf_printf(out, "\\n");
		else
			err = buf_append(out, s, 1);
	}
	return err;
}

/* route="...",backend="...",role="arm|fallback" */
static int arm_labels(struct buf *out, const struct route_def *d, const char *backend,
		      const char *role)
{
	int err = buf_printf(out, "route=\"");
	if (!err)
		err = put_label(out, d->name);
	if (!err)
		err = buf_printf(out, "\",backend=\"");
	if (!err)
		err = put_label(out, backend);
	return err ? err : buf_printf(out, "\",role=\"%s\"", role);
}

static int metric_line(struct buf *out, const char *name, const struct route_def *d,
		       const char *backend, const char *role, uint64_t v)
{
	int err = buf_printf(out, "%s{", name);
	if (!err)
		err = arm_labels(out, d, backend, role);
	return err ? err : buf_printf(out, "} %" PRIu64 "\n", v);
}

static const struct {
	const char *name, *type, *help;
} series[] = {
	{ "sluice_route_requests_total", "counter", "Attempts sent to a route's target" },
	{ "sluice_route_failures_total", "counter",
	  "Attempts that failed (connect, timeout, reset, 5xx, 429, error event)" },
	{ "sluice_route_fallbacks_total", "counter", "Requests moved from this target to the next" },
	{ "sluice_route_weight", "gauge", "Live weight of an arm (admin may change it)" },
	{ "sluice_route_breaker_open", "gauge", "Workers whose breaker for this target is open" },
	{ "sluice_route_responses_total", "counter", "Requests that ended on this target" },
	{ "sluice_route_errors_total", "counter",
	  "Requests that ended on this target with an error for the client" },
};

static uint64_t series_value(unsigned k, const struct route_arm *a, const struct arm_sum *s)
{
	switch (k) {
	case 0: return s->requests;
	case 1: return s->failures;
	case 2: return s->fallbacks;
	case 3: return __atomic_load_n(&a->weight, __ATOMIC_RELAXED);
	case 4: return s->open;
	case 5: return s->st.responses;
	default: return s->st.errors;
	}
}

/* One histogram's series of one arm, buckets made cumulative. */
static int histogram_lines(struct buf *out, const char *name, const struct route_def *d,
			   const char *backend, const char *role, const uint64_t *h,
			   uint64_t sum_ns)
{
	uint64_t cum = 0;
	int err = 0;
	for (unsigned b = 0; !err && b < METRICS_BUCKETS; b++) {
		cum += h[b];
		err = buf_printf(out, "%s_bucket{", name);
		if (!err)
			err = arm_labels(out, d, backend, role);
		if (!err)
			err = buf_printf(out, ",le=\"%s\"} %" PRIu64 "\n", metrics_bucket_le[b], cum);
	}
	if (!err)
		err = buf_printf(out, "%s_sum{", name);
	if (!err)
		err = arm_labels(out, d, backend, role);
	if (!err)
		err = buf_printf(out, "} %.9f\n%s_count{", (double)sum_ns / 1e9, name);
	if (!err)
		err = arm_labels(out, d, backend, role);
	return err ? err : buf_printf(out, "} %" PRIu64 "\n", cum);
}

/* Latency, time to first token and tokens of one arm. */
static int arm_histograms(struct buf *out, unsigned k, const struct route_def *d,
			  const char *backend, const char *role, const struct arm_sum *s)
{
	if (k == 0)
		return histogram_lines(out, "sluice_route_request_duration_seconds", d, backend,
				       role, s->st.lat, s->st.lat_sum_ns);
	if (k == 1)
		return histogram_lines(out, "sluice_route_time_to_first_token_seconds", d,
				       backend, role, s->st.ttft, s->st.ttft_sum_ns);
	int err = buf_printf(out, "sluice_route_tokens_total{");
	if (!err)
		err = arm_labels(out, d, backend, role);
	if (!err)
		err = buf_printf(out, ",direction=\"input\"} %" PRIu64
				 "\nsluice_route_tokens_total{", s->st.tokens_in);
	if (!err)
		err = arm_labels(out, d, backend, role);
	return err ? err : buf_printf(out, ",direction=\"output\"} %" PRIu64 "\n",
				      s->st.tokens_out);
}

static const struct {
	const char *name, *type, *help;
} hseries[] = {
	{ "sluice_route_request_duration_seconds", "histogram",
	  "Time from request to its end, by the target it ended on" },
	{ "sluice_route_time_to_first_token_seconds", "histogram",
	  "Time from request to the first byte of the answer, by target" },
	{ "sluice_route_tokens_total", "counter", "Tokens the backend reported, by target" },
};

int route_render_metrics(const struct route_table *rt, struct route_cursor *const *cursors,
			 unsigned n, uint64_t now, struct buf *out)
{
	/* The plain series, then the histograms and tokens: one family at a
	 * time, one line (or set) per target of the explicit routes. */
	const unsigned nplain = sizeof(series) / sizeof(series[0]);
	const unsigned nfam = nplain + sizeof(hseries) / sizeof(hseries[0]);
	int err = 0;
	for (unsigned k = 0; !err && k < nfam; k++) {
		const char *name = k < nplain ? series[k].name : hseries[k - nplain].name;
		err = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name,
				 k < nplain ? series[k].help : hseries[k - nplain].help, name,
				 k < nplain ? series[k].type : hseries[k - nplain].type);
		for (unsigned r = 0; !err && r < rt->ndefs; r++) {
			const struct route_def *d = &rt->defs[r];
			if (d->implicit)
				continue;
			for (unsigned i = 0; !err && i < d->narms + d->nfallback; i++) {
				const struct route_arm *a = &d->arms[i];
				const char *backend = rt->cfg->backends[a->backend].name;
				const char *role = a->fallback ? "fallback" : "arm";
				struct arm_sum s;
				sum_arm(a, cursors, n, now, &s);
				err = k < nplain ? metric_line(out, name, d, backend, role,
							       series_value(k, a, &s))
						 : arm_histograms(out, k - nplain, d, backend, role, &s);
			}
		}
	}
	return err;
}

/* ---- backends: breakers and readiness ---- */

/* Workers whose breaker for backend b is open (its time not up), and
 * how often it opened in all. */
static unsigned backend_open(struct route_cursor *const *cursors, unsigned n, unsigned b,
			     uint64_t now, uint64_t *opened)
{
	unsigned open = 0;
	if (opened)
		*opened = 0;
	for (unsigned i = 0; i < n; i++) {
		if (b >= cursors[i]->nbackends)
			continue;
		const struct route_backend_state *s = &cursors[i]->backends[b];
		if (opened)
			*opened += __atomic_load_n(&s->opened, __ATOMIC_RELAXED);
		open += __atomic_load_n(&s->breaker, __ATOMIC_RELAXED) == ROUTE_BREAKER_OPEN &&
			__atomic_load_n(&s->open_until, __ATOMIC_RELAXED) > now;
	}
	return open;
}

int route_render_backend_metrics(const struct route_table *rt,
				 struct route_cursor *const *cursors, unsigned n, uint64_t now,
				 struct buf *out)
{
	const struct sluice_config *cfg = rt->cfg;
	int err = buf_printf(out, "# HELP sluice_backend_breaker_open Workers whose breaker for "
			     "the backend is open\n# TYPE sluice_backend_breaker_open gauge\n");
	for (unsigned b = 0; !err && b < cfg->nbackends; b++)
		err = buf_printf(out, "sluice_backend_breaker_open{backend=\"%s\"} %u\n",
				 cfg->backends[b].name, backend_open(cursors, n, b, now, NULL));
	if (!err)
		err = buf_printf(out, "# HELP sluice_backend_breaker_opens_total Times a worker's "
				 "breaker for the backend opened\n# TYPE "
				 "sluice_backend_breaker_opens_total counter\n");
	for (unsigned b = 0; !err && b < cfg->nbackends; b++) {
		uint64_t opened;
		backend_open(cursors, n, b, now, &opened);
		err = buf_printf(out, "sluice_backend_breaker_opens_total{backend=\"%s\"} %" PRIu64
				 "\n", cfg->backends[b].name, opened);
	}
	return err;
}

static bool target_healthy(const struct route_arm *a, struct route_cursor *const *cursors,
			   unsigned n, uint64_t now)
{
	if (!a->fallback && !__atomic_load_n(&a->weight, __ATOMIC_RELAXED))
		return false;
	if (n && !health_up(cursors[0]->health, a->backend))
		return false;
	return !n || backend_open(cursors, n, a->backend, now, NULL) < n;
}

bool route_ready(const struct route_table *rt, struct route_cursor *const *cursors, unsigned n,
		 uint64_t now, const char **unready)
{
	for (unsigned r = 0; r < rt->ndefs; r++) {
		const struct route_def *d = &rt->defs[r];
		bool ok = false;
		for (unsigned i = 0; !ok && i < d->narms + d->nfallback; i++)
			ok = target_healthy(&d->arms[i], cursors, n, now);
		if (!ok) {
			*unready = d->name;
			return false;
		}
	}
	return true;
}
