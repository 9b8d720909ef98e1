/* SPDX-License-Identifier: Apache-2.0 */
#include "obs/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/sat.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Model names are interned into a fixed table per worker.  Slot MODEL_OTHER
 * takes every name past the table (and names too long to store), so the
 * memory and the series count stay bounded whatever clients send.
 */
#define MODELS_MAX	128
#define MODEL_NAME_MAX	(256 + 1)		/* API_MODEL_MAX (api/openai.h) and a NUL */
#define MODEL_OTHER	MODELS_MAX
#define MODEL_SLOTS	(MODELS_MAX + 1)
#define MODEL_HASH_SIZE	256			/* power of two, > MODELS_MAX: never full */

/* Status codes the gateway and OpenAI backends actually answer with get a
 * slot of their own; any other code is counted under its class ("2xx"),
 * and codes outside 100..599 under "other". */
static const uint16_t status_codes[] = {
	200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 499,
	500, 501, 502, 503, 504, 505,
};
#define STATUS_KNOWN	ARRAY_LEN(status_codes)
#define STATUS_CLASSES	5			/* 1xx .. 5xx */
#define STATUS_OTHER	(STATUS_KNOWN + STATUS_CLASSES)
#define STATUS_SLOTS	(STATUS_OTHER + 1)

/* Histogram upper bounds, in nanoseconds and as rendered in le="". */
const uint64_t metrics_bucket_bound_ns[METRICS_BUCKETS - 1] = {
	UINT64_C(1000000), UINT64_C(2500000), UINT64_C(5000000),
	UINT64_C(10000000), UINT64_C(25000000), UINT64_C(50000000),
	UINT64_C(100000000), UINT64_C(250000000), UINT64_C(500000000),
	UINT64_C(1000000000), UINT64_C(2500000000), UINT64_C(5000000000),
	UINT64_C(10000000000), UINT64_C(30000000000), UINT64_C(60000000000),
};
const char *const metrics_bucket_le[METRICS_BUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10", "30", "60", "+Inf",
};
#define BUCKETS		(ARRAY_LEN(metrics_bucket_bound_ns) + 1)	/* last is +Inf */

enum token_dir { TOKENS_INPUT, TOKENS_OUTPUT, TOKENS_CACHED, TOKENS_REASONING, TOKEN_DIRS };
static const char *const token_dir_name[TOKEN_DIRS] = {
	"input", "output", "cached_input", "reasoning",
};

static const char *const upstream_kind_name[UPSTREAM_ERR_KINDS] = {
	"connect", "reset", "timeout", "tls", "protocol",
};

/* Bucket counts are not cumulative here; the count is their sum, so a
 * scrape never renders a _count that disagrees with the +Inf bucket. */
struct histogram {
	uint64_t bucket[BUCKETS];
	uint64_t sum_ns;
};

struct model_stats {
	uint64_t tokens[TOKEN_DIRS];
	struct histogram latency;
	struct histogram ttft;
};

struct model_name {
	uint64_t hash;
	size_t len;
	char text[MODEL_NAME_MAX];
};

struct metrics {
	uint64_t conn_opened;
	uint64_t conn_closed;
	uint64_t conn_rejected;

	size_t nbackends;
	char **backend_names;		/* copies: the config may be swapped */
	uint64_t *requests;		/* [MODEL_SLOTS][nbackends + 1][STATUS_SLOTS];
					 * backend slot 0 is "none" */
	uint64_t *upstream_errors;	/* [nbackends][UPSTREAM_ERR_KINDS] */

	/* models[0..nmodels) are immutable once published by the release
	 * store of nmodels; only the owning worker reads model_hash. */
	uint32_t nmodels;
	uint16_t model_hash[MODEL_HASH_SIZE];	/* 1 + index into models, 0: empty */
	struct model_name models[MODELS_MAX];
	struct model_stats stats[MODEL_SLOTS];
};

/* The only writer of a counter is its worker: a relaxed load and store is
 * enough, and readers see either the old or the new value, never a torn one. */
static inline void counter_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t counter_read(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static uint64_t name_hash(struct str s)
{
	return fnv1a64(FNV1A64_INIT, s.p, s.len);
}

/* ---- the per-request path ---- */

static unsigned model_publish(struct metrics *m, struct str name, uint64_t hash,
			      size_t hash_slot)
{
	uint32_t idx = m->nmodels;

	if (idx == MODELS_MAX)
		return MODEL_OTHER;

	struct model_name *n = &m->models[idx];
	n->hash = hash;
	n->len = name.len;
	if (name.len)
		memcpy(n->text, name.p, name.len);
	m->model_hash[hash_slot] = (uint16_t)(idx + 1);
	/* A scraper that sees the new count also sees the name written above. */
	__atomic_store_n(&m->nmodels, idx + 1, __ATOMIC_RELEASE);
	return idx;
}

/* The stats slot of a model name, interning it on first sight. */
static unsigned model_slot(struct metrics *m, struct str name)
{
	const size_t mask = MODEL_HASH_SIZE - 1;

	if (!name.p)
		name = STR_LIT("none");
	if (name.len >= MODEL_NAME_MAX)
		return MODEL_OTHER;

	uint64_t hash = name_hash(name);
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		unsigned e = m->model_hash[i];
		if (e == 0)
			return model_publish(m, name, hash, i);
		const struct model_name *n = &m->models[e - 1];
		if (n->hash == hash && n->len == name.len &&
		    memcmp(n->text, name.p, name.len) == 0)
			return e - 1;
	}
}

static unsigned status_slot(int status)
{
	for (unsigned i = 0; i < STATUS_KNOWN; i++)
		if (status_codes[i] == status)
			return i;
	if (status >= 100 && status <= 599)
		return (unsigned)(STATUS_KNOWN + status / 100 - 1);
	return STATUS_OTHER;
}

/* Backend -1 (and, defensively, any index the config does not have) is
 * slot 0, "none". */
static size_t backend_slot(const struct metrics *m, int backend)
{
	if (backend < 0 || (size_t)backend >= m->nbackends)
		return 0;
	return (size_t)backend + 1;
}

static uint64_t *request_counter(struct metrics *m, unsigned model, int backend, int status)
{
	size_t row = (size_t)model * (m->nbackends + 1) + backend_slot(m, backend);
	return &m->requests[row * STATUS_SLOTS + status_slot(status)];
}

unsigned metrics_bucket_of(uint64_t ns)
{
	unsigned b = 0;

	while (b < ARRAY_LEN(metrics_bucket_bound_ns) && ns > metrics_bucket_bound_ns[b])
		b++;
	return b;
}

static void histogram_observe(struct histogram *h, uint64_t ns)
{
	counter_add(&h->bucket[metrics_bucket_of(ns)], 1);
	counter_add(&h->sum_ns, ns);
}

/* Token counts are the backend's numbers: the sum saturates rather than
 * wrap a counter back to small values (Prometheus would read a reset). */
static void tokens_add(uint64_t *c, int64_t n)
{
	if (n >= 0)
		__atomic_store_n(c, sat_add_u64(counter_read(c), (uint64_t)n), __ATOMIC_RELAXED);
}

void metrics_request_done(struct metrics *m, const struct request_record *rec)
{
	unsigned model = model_slot(m, rec->model);
	struct model_stats *s = &m->stats[model];

	counter_add(request_counter(m, model, rec->backend, rec->status), 1);
	histogram_observe(&s->latency, rec->latency_ns);
	if (rec->ttft_ns > 0)
		histogram_observe(&s->ttft, rec->ttft_ns);
	tokens_add(&s->tokens[TOKENS_INPUT], rec->usage.prompt_tokens);
	tokens_add(&s->tokens[TOKENS_OUTPUT], rec->usage.completion_tokens);
	tokens_add(&s->tokens[TOKENS_CACHED], rec->usage.cached_tokens);
	tokens_add(&s->tokens[TOKENS_REASONING], rec->usage.reasoning_tokens);
}

void metrics_upstream_error(struct metrics *m, unsigned backend, enum upstream_error_kind kind)
{
	if (backend >= m->nbackends || (unsigned)kind >= UPSTREAM_ERR_KINDS)
		return;
	counter_add(&m->upstream_errors[backend * UPSTREAM_ERR_KINDS + kind], 1);
}

void metrics_conn_opened(struct metrics *m)
{
	counter_add(&m->conn_opened, 1);
}

void metrics_conn_closed(struct metrics *m)
{
	counter_add(&m->conn_closed, 1);
}

void metrics_conn_rejected(struct metrics *m)
{
	counter_add(&m->conn_rejected, 1);
}

/* ---- life cycle ---- */

static int copy_backend_names(struct metrics *m, const struct sluice_config *cfg)
{
	m->backend_names = calloc(m->nbackends ? m->nbackends : 1, sizeof(char *));
	if (!m->backend_names)
		return -ENOMEM;
	for (size_t i = 0; i < m->nbackends; i++) {
		const char *name = cfg->backends[i].name;
		m->backend_names[i] = strdup(name ? name : "");
		if (!m->backend_names[i])
			return -ENOMEM;
	}
	return 0;
}

struct metrics *metrics_new(const struct sluice_config *cfg)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->nbackends = cfg ? cfg->nbackends : 0;
	m->requests = calloc((size_t)MODEL_SLOTS * (m->nbackends + 1) * STATUS_SLOTS,
			     sizeof(uint64_t));
	m->upstream_errors = calloc((m->nbackends ? m->nbackends : 1) * UPSTREAM_ERR_KINDS,
				    sizeof(uint64_t));
	if (!m->requests || !m->upstream_errors || copy_backend_names(m, cfg) < 0) {
		metrics_free(m);
		return NULL;
	}
	/* Requests without a model must not land in "other" once the table
	 * is full, so their name takes the first slot up front. */
	model_slot(m, STR_NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->backend_names && i < m->nbackends; i++)
		free(m->backend_names[i]);
	free(m->backend_names);
	free(m->requests);
	free(m->upstream_errors);
	free(m);
}

/* ---- the scrape ----
 *
 * Workers intern models (and may have been built from different configs)
 * in their own order, so the scrape first gives every distinct model and
 * backend name a merged index, then sums each worker into merged arrays,
 * then renders those.  It allocates freely: it is not the request path.
 */

struct worker_view {
	const struct metrics *m;
	uint32_t nmodels;		/* snapshot: later names wait for the next scrape */
	uint32_t model_map[MODEL_SLOTS];	/* worker model slot -> merged model */
	uint32_t *backend_map;		/* worker backend slot -> merged backend slot */
};

struct scrape {
	struct worker_view *views;
	size_t nviews;

	struct str *models;
	size_t nmodels;
	uint32_t *model_hash;		/* 1 + index into models, 0: empty */
	size_t model_hash_mask;

	const char **backends;		/* slot 0 is "none" */
	size_t nbackends;		/* slots, "none" included */

	uint64_t *requests;		/* [nmodels][nbackends][STATUS_SLOTS] */
	struct model_stats *stats;	/* [nmodels] */
	uint64_t *upstream_errors;	/* [nbackends][UPSTREAM_ERR_KINDS] */
	uint64_t conn_opened, conn_closed, conn_rejected;
};

static void scrape_free(struct scrape *sc)
{
	for (size_t i = 0; sc->views && i < sc->nviews; i++)
		free(sc->views[i].backend_map);
	free(sc->views);
	free(sc->models);
	free(sc->model_hash);
	free(sc->backends);
	free(sc->requests);
	free(sc->stats);
	free(sc->upstream_errors);
}

static uint32_t scrape_backend(struct scrape *sc, const char *name)
{
	for (size_t i = 0; i < sc->nbackends; i++)
		if (strcmp(sc->backends[i], name) == 0)
			return (uint32_t)i;
	sc->backends[sc->nbackends] = name;
	return (uint32_t)sc->nbackends++;
}

static uint32_t scrape_model(struct scrape *sc, struct str name)
{
	uint64_t hash = name_hash(name);

	for (size_t i = hash & sc->model_hash_mask;; i = (i + 1) & sc->model_hash_mask) {
		uint32_t e = sc->model_hash[i];
		if (e == 0) {
			sc->models[sc->nmodels] = name;
			sc->model_hash[i] = (uint32_t)++sc->nmodels;
			return (uint32_t)(sc->nmodels - 1);
		}
		if (str_eq(sc->models[e - 1], name))
			return e - 1;
	}
}

static struct str worker_model_name(const struct metrics *m, unsigned slot)
{
	if (slot == MODEL_OTHER)
		return STR_LIT("other");
	return (struct str){ m->models[slot].text, m->models[slot].len };
}

/* Snapshot each worker's model count and size the name tables for the
 * worst case, every name distinct. */
static int scrape_alloc_names(struct scrape *sc)
{
	size_t max_models = 0, max_backends = 1, hash_size = 16;

	for (size_t w = 0; w < sc->nviews; w++) {
		struct worker_view *v = &sc->views[w];
		v->nmodels = __atomic_load_n(&v->m->nmodels, __ATOMIC_ACQUIRE);
		max_models += v->nmodels + 1;
		max_backends += v->m->nbackends;
		v->backend_map = calloc(v->m->nbackends + 1, sizeof(uint32_t));
		if (!v->backend_map)
			return -ENOMEM;
	}
	while (hash_size < 2 * max_models)
		hash_size *= 2;
	sc->model_hash_mask = hash_size - 1;
	sc->model_hash = calloc(hash_size, sizeof(uint32_t));
	sc->models = calloc(max_models + 1, sizeof(struct str));
	sc->backends = calloc(max_backends, sizeof(char *));
	if (!sc->model_hash || !sc->models || !sc->backends)
		return -ENOMEM;
	return 0;
}

/* Give every worker's models and backends a merged index. */
static int scrape_map_names(struct scrape *sc)
{
	int err = scrape_alloc_names(sc);

	if (err)
		return err;
	scrape_backend(sc, "none");
	for (size_t w = 0; w < sc->nviews; w++) {
		struct worker_view *v = &sc->views[w];
		for (size_t b = 0; b < v->m->nbackends; b++)
			v->backend_map[b + 1] = scrape_backend(sc, v->m->backend_names[b]);
		for (unsigned i = 0; i < v->nmodels; i++)
			v->model_map[i] = scrape_model(sc, worker_model_name(v->m, i));
		v->model_map[MODEL_OTHER] = scrape_model(sc, STR_LIT("other"));
	}
	return 0;
}

static void histogram_merge(struct histogram *to, const struct histogram *from)
{
	for (size_t b = 0; b < BUCKETS; b++)
		to->bucket[b] += counter_read(&from->bucket[b]);
	to->sum_ns += counter_read(&from->sum_ns);
}

static void scrape_merge_model(struct scrape *sc, const struct worker_view *v, unsigned slot)
{
	const struct metrics *m = v->m;
	uint32_t to = v->model_map[slot];
	const struct model_stats *s = &m->stats[slot];

	for (size_t b = 0; b <= m->nbackends; b++) {
		const uint64_t *src = &m->requests[((size_t)slot * (m->nbackends + 1) + b) * STATUS_SLOTS];
		uint64_t *dst = &sc->requests[((size_t)to * sc->nbackends + v->backend_map[b]) * STATUS_SLOTS];
		for (size_t st = 0; st < STATUS_SLOTS; st++)
			dst[st] += counter_read(&src[st]);
	}
	for (size_t d = 0; d < TOKEN_DIRS; d++)	/* backends' numbers: see tokens_add */
		sc->stats[to].tokens[d] = sat_add_u64(sc->stats[to].tokens[d],
						      counter_read(&s->tokens[d]));
	histogram_merge(&sc->stats[to].latency, &s->latency);
	histogram_merge(&sc->stats[to].ttft, &s->ttft);
}

static void scrape_merge_worker(struct scrape *sc, const struct worker_view *v)
{
	const struct metrics *m = v->m;

	for (unsigned i = 0; i < v->nmodels; i++)
		scrape_merge_model(sc, v, i);
	scrape_merge_model(sc, v, MODEL_OTHER);
	for (size_t b = 0; b < m->nbackends; b++) {
		uint64_t *dst = &sc->upstream_errors[v->backend_map[b + 1] * UPSTREAM_ERR_KINDS];
		for (size_t k = 0; k < UPSTREAM_ERR_KINDS; k++)
			dst[k] += counter_read(&m->upstream_errors[b * UPSTREAM_ERR_KINDS + k]);
	}
	/* closed before opened: a connection opened in between only makes
	 * the gauge read high for one scrape, never negative. */
	sc->conn_closed += counter_read(&m->conn_closed);
	sc->conn_opened += counter_read(&m->conn_opened);
	sc->conn_rejected += counter_read(&m->conn_rejected);
}

static int scrape_collect(struct scrape *sc, struct metrics *const *workers, size_t n)
{
	sc->nviews = n;
	sc->views = calloc(n ? n : 1, sizeof(*sc->views));
	if (!sc->views)
		return -ENOMEM;
	for (size_t w = 0; w < n; w++)
		sc->views[w].m = workers[w];

	int err = scrape_map_names(sc);
	if (err)
		return err;
	/* +1: no workers means no models, and calloc(0) may return NULL */
	sc->requests = calloc(sc->nmodels * sc->nbackends * STATUS_SLOTS + 1, sizeof(uint64_t));
	sc->stats = calloc(sc->nmodels + 1, sizeof(*sc->stats));
	sc->upstream_errors = calloc(sc->nbackends * UPSTREAM_ERR_KINDS, sizeof(uint64_t));
	if (!sc->requests || !sc->stats || !sc->upstream_errors)
		return -ENOMEM;
	for (size_t w = 0; w < n; w++)
		scrape_merge_worker(sc, &sc->views[w]);
	return 0;
}

/* ---- the exposition text (format 0.0.4) ---- */

/* Appends with a sticky error, so the renderers read as the text they emit. */
struct emit {
	struct buf *out;
	int err;
};

static void emit_bytes(struct emit *e, const char *p, size_t n)
{
	if (!e->err)
		e->err = buf_append(e->out, p, n);
}

static void emit_cstr(struct emit *e, const char *s)
{
	emit_bytes(e, s, strlen(s));
}

static __attribute__((format(printf, 2, 3))) void emitf(struct emit *e, const char *fmt, ...)
{
	va_list ap;

	if (e->err)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (e->err = buf_reserve(e->out, (size_t)n + 1)))
		return;
	va_start(ap, fmt);
	vsnprintf(buf_tail(e->out), buf_room(e->out), fmt, ap);
	va_end(ap);
	e->out->len += (size_t)n;
}

/* A label value between quotes, with \\, \" and \n escaped. */
static void emit_label_value(struct emit *e, struct str v)
{
	size_t from = 0;

	emit_bytes(e, "\"", 1);
	for (size_t i = 0; i < v.len; i++) {
		const char *esc = v.p[i] == '\\' ? "\\\\" : v.p[i] == '"' ? "\\\"" :
				  v.p[i] == '\n' ? "\\n" : NULL;
		if (!esc)
			continue;
		emit_bytes(e, v.p + from, i - from);
		emit_bytes(e, esc, 2);
		from = i + 1;
	}
	emit_bytes(e, v.p + from, v.len - from);
	emit_bytes(e, "\"", 1);
}

static void emit_label(struct emit *e, const char *sep, const char *name, struct str value)
{
	emit_cstr(e, sep);
	emit_cstr(e, name);
	emit_bytes(e, "=", 1);
	emit_label_value(e, value);
}

static void emit_family(struct emit *e, const char *name, const char *type, const char *help)
{
	emitf(e, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void emit_status_label(struct emit *e, size_t slot)
{
	char text[8];

	if (slot < STATUS_KNOWN)
		snprintf(text, sizeof(text), "%u", status_codes[slot]);
	else if (slot < STATUS_OTHER)
		snprintf(text, sizeof(text), "%zuxx", slot - STATUS_KNOWN + 1);
	else
		snprintf(text, sizeof(text), "other");
	emit_label(e, ",", "status", str_from(text));
}

static void render_requests(struct emit *e, const struct scrape *sc)
{
	emit_family(e, "sluice_requests_total", "counter",
		    "Requests answered, by model, backend and status.");
	for (size_t m = 0; m < sc->nmodels; m++) {
		for (size_t b = 0; b < sc->nbackends; b++) {
			const uint64_t *c = &sc->requests[(m * sc->nbackends + b) * STATUS_SLOTS];
			for (size_t st = 0; st < STATUS_SLOTS; st++) {
				if (!c[st])
					continue;
				emit_label(e, "sluice_requests_total{", "model", sc->models[m]);
				emit_label(e, ",", "backend", str_from(sc->backends[b]));
				emit_status_label(e, st);
				emitf(e, "} %" PRIu64 "\n", c[st]);
			}
		}
	}
}

static void render_tokens(struct emit *e, const struct scrape *sc)
{
	emit_family(e, "sluice_tokens_total", "counter",
		    "Tokens reported by backends, by model and direction.");
	for (size_t m = 0; m < sc->nmodels; m++) {
		for (size_t d = 0; d < TOKEN_DIRS; d++) {
			uint64_t n = sc->stats[m].tokens[d];
			if (!n)
				continue;
			emit_label(e, "sluice_tokens_total{", "model", sc->models[m]);
			emit_label(e, ",", "direction", str_from(token_dir_name[d]));
			emitf(e, "} %" PRIu64 "\n", n);
		}
	}
}

static void render_histogram(struct emit *e, const char *name, struct str model,
			     const struct histogram *h)
{
	uint64_t cumulative = 0;

	for (size_t b = 0; b < BUCKETS; b++) {
		cumulative += h->bucket[b];
		emit_cstr(e, name);
		emit_label(e, "_bucket{", "model", model);
		emit_label(e, ",", "le", str_from(metrics_bucket_le[b]));
		emitf(e, "} %" PRIu64 "\n", cumulative);
	}
	emit_cstr(e, name);
	emit_label(e, "_sum{", "model", model);
	/* nanoseconds as exact decimal seconds */
	emitf(e, "} %" PRIu64 ".%09" PRIu64 "\n", h->sum_ns / 1000000000u,
	      h->sum_ns % 1000000000u);
	emit_cstr(e, name);
	emit_label(e, "_count{", "model", model);
	emitf(e, "} %" PRIu64 "\n", cumulative);
}

static uint64_t histogram_count(const struct histogram *h)
{
	uint64_t n = 0;

	for (size_t b = 0; b < BUCKETS; b++)
		n += h->bucket[b];
	return n;
}

static void render_latencies(struct emit *e, const struct scrape *sc)
{
	static const char duration[] = "sluice_request_duration_seconds";
	static const char ttft[] = "sluice_time_to_first_token_seconds";

	emit_family(e, duration, "histogram",
		    "Time from the first request byte to the last response byte.");
	for (size_t m = 0; m < sc->nmodels; m++)
		if (histogram_count(&sc->stats[m].latency))
			render_histogram(e, duration, sc->models[m], &sc->stats[m].latency);
	emit_family(e, ttft, "histogram",
		    "Time from the first request byte to the first response body byte.");
	for (size_t m = 0; m < sc->nmodels; m++)
		if (histogram_count(&sc->stats[m].ttft))
			render_histogram(e, ttft, sc->models[m], &sc->stats[m].ttft);
}

static void render_upstream_errors(struct emit *e, const struct scrape *sc)
{
	emit_family(e, "sluice_upstream_errors_total", "counter",
		    "Failed exchanges with backends, by backend and kind.");
	for (size_t b = 0; b < sc->nbackends; b++) {
		for (size_t k = 0; k < UPSTREAM_ERR_KINDS; k++) {
			uint64_t n = sc->upstream_errors[b * UPSTREAM_ERR_KINDS + k];
			if (!n)
				continue;
			emit_label(e, "sluice_upstream_errors_total{", "backend",
				   str_from(sc->backends[b]));
			emit_label(e, ",", "kind", str_from(upstream_kind_name[k]));
			emitf(e, "} %" PRIu64 "\n", n);
		}
	}
}

static void render_connections(struct emit *e, const struct scrape *sc)
{
	uint64_t active = sc->conn_opened > sc->conn_closed ?
			  sc->conn_opened - sc->conn_closed : 0;

	emit_family(e, "sluice_connections_active", "gauge", "Client connections open now.");
	emitf(e, "sluice_connections_active %" PRIu64 "\n", active);
	emit_family(e, "sluice_connections_total", "counter", "Client connections accepted.");
	emitf(e, "sluice_connections_total %" PRIu64 "\n", sc->conn_opened);
	emit_family(e, "sluice_connections_rejected_total", "counter",
		    "Client connections refused over the connection limit.");
	emitf(e, "sluice_connections_rejected_total %" PRIu64 "\n", sc->conn_rejected);
}

static void render_build_info(struct emit *e)
{
	emit_family(e, "sluice_build_info", "gauge", "Build of the running daemon; always 1.");
	emit_label(e, "sluice_build_info{", "version", STR_LIT(SLUICE_VERSION));
	emit_cstr(e, "} 1\n");
}

int metrics_render(struct metrics *const *workers, size_t n, struct buf *out)
{
	struct scrape sc = { 0 };
	struct emit e = { .out = out };
	/* in live bytes: a reserve may compact the buffer and move off */
	size_t start = buf_used(out);

	e.err = scrape_collect(&sc, workers, n);
	if (!e.err) {
		render_requests(&e, &sc);
		render_tokens(&e, &sc);
		render_latencies(&e, &sc);
		render_upstream_errors(&e, &sc);
		render_connections(&e, &sc);
		render_build_info(&e);
	}
	scrape_free(&sc);
	/* All or nothing: a half-rendered page would read as counter resets. */
	if (e.err)
		out->len = out->off + start;
	return e.err;
}
