/* SPDX-License-Identifier: Apache-2.0 */
#include "route/health.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define NS_PER_MS	1000000ull

static const struct backend_cfg *backend(const struct health *h, unsigned b)
{
	return &h->cfg->backends[b];
}

/* scheme://host:port/path, from the server root: a health path is not
 * under the API base path (vLLM's /health next to /v1). */
static char *check_url(const struct backend_cfg *be)
{
	bool v6 = strchr(be->host, ':') != NULL;
	size_t cap = strlen(be->host) + strlen(be->hc_path) + 32;
	char *url = malloc(cap);
	if (url)
		snprintf(url, cap, "%s://%s%s%s:%u%s", be->tls ? "https" : "http", v6 ? "[" : "",
			 be->host, v6 ? "]" : "", be->port, be->hc_path);
	return url;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int check_begin(struct health *h, unsigned b)
{
	const struct backend_cfg *be = backend(h, b);
	struct health_target *t = &h->t[b];
	CURL *e = curl_easy_init();
	if (!e)
		return -ENOMEM;
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)be->hc_timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	if (be->tls) {
		if (be->ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, be->ca_file);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, be->tls_verify ? 1L : 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, be->tls_verify ? 2L : 0L);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -ENOMEM;
	}
	t->easy = e;
	return 0;
}

static void count_up(uint64_t *c)
{
	__atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

/* One check is over: count it in a row, and flip the mark when a run is
 * long enough. */
static void check_done(struct health *h, struct health_target *t, bool ok)
{
	unsigned b = (unsigned)(t - h->t);
	const struct backend_cfg *be = backend(h, b);
	bool down = __atomic_load_n(&t->down, __ATOMIC_RELAXED);
	count_up(&t->checks);
	if (ok) {
		t->fails = 0;
		t->passes++;
		if (down && t->passes >= be->hc_healthy_after) {
			__atomic_store_n(&t->down, 0, __ATOMIC_RELAXED);
			log_info("backend %s: healthy again after %u checks of %s", be->name,
				 t->passes, be->hc_path);
		}
		return;
	}
	count_up(&t->failed);
	t->passes = 0;
	t->fails++;
	if (!down && t->fails >= be->hc_unhealthy_after) {
		__atomic_store_n(&t->down, 1, __ATOMIC_RELAXED);
		log_warn("backend %s: down after %u failed checks of %s", be->name, t->fails,
			 be->hc_path);
	}
}

static void reap(struct health *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		struct health_target *t = NULL;
		long status = 0;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		bool ok = m->data.result == CURLE_OK && status >= 200 && status < 300;
		curl_multi_remove_handle(h->multi, e);
		curl_easy_cleanup(e);
		t->easy = NULL;
		check_done(h, t, ok);
	}
}

/* Start the checks that are due; the time until the next one, in ms. */
static long start_due(struct health *h)
{
	uint64_t now = clock_mono_ns(), next = UINT64_MAX;
	for (unsigned b = 0; b < h->n; b++) {
		struct health_target *t = &h->t[b];
		if (!t->checked)
			continue;
		if (!t->easy && t->next_ns <= now) {
			t->next_ns = now + backend(h, b)->hc_interval_ms * NS_PER_MS;
			if (check_begin(h, b))
				check_done(h, t, false);
		}
		if (t->next_ns < next)
			next = t->next_ns;
	}
	if (next == UINT64_MAX)
		return 1000;
	uint64_t ms = next > now ? (next - now + NS_PER_MS - 1) / NS_PER_MS : 0;
	return ms > 1000 ? 1000 : (long)ms;
}

static void *health_main(void *arg)
{
	struct health *h = arg;
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		long wait = start_due(h);
		int running = 0;
		curl_multi_perform(h->multi, &running);
		reap(h);
		curl_multi_poll(h->multi, NULL, 0, (int)(wait ? wait : 1), NULL);
		curl_multi_perform(h->multi, &running);
		reap(h);
	}
	return NULL;
}

int health_start(struct health *h, const struct sluice_config *cfg)
{
	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	h->n = (unsigned)cfg->nbackends;
	h->t = calloc(h->n ? h->n : 1, sizeof(*h->t));
	if (!h->t)
		return -ENOMEM;
	bool any = false;
	for (unsigned b = 0; b < h->n; b++) {
		const struct backend_cfg *be = &cfg->backends[b];
		if (!be->hc_enabled)
			continue;
		h->t[b].checked = any = true;
		if (!(h->t[b].url = check_url(be))) {
			health_stop(h);
			return -ENOMEM;
		}
	}
	if (!any)
		return 0;
	/* From the main thread, before any other uses libcurl. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!(h->multi = curl_multi_init())) {
		health_stop(h);
		return -ENOMEM;
	}
	int err = pthread_create(&h->thread, NULL, health_main, h);
	if (err) {
		health_stop(h);
		return -err;
	}
	h->running = true;
	return 0;
}

void health_stop(struct health *h)
{
	if (h->running) {
		__atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
		curl_multi_wakeup(h->multi);
		pthread_join(h->thread, NULL);
		h->running = false;
	}
	for (unsigned b = 0; h->t && b < h->n; b++) {
		if (h->t[b].easy) {
			curl_multi_remove_handle(h->multi, h->t[b].easy);
			curl_easy_cleanup(h->t[b].easy);
		}
		free(h->t[b].url);
	}
	if (h->multi)
		curl_multi_cleanup(h->multi);
	free(h->t);
	memset(h, 0, sizeof(*h));
}

int health_render_metrics(const struct health *h, struct buf *out)
{
	int err = buf_printf(out, "# HELP sluice_backend_up Whether the backend passes its "
			     "health checks (1 without checks)\n# TYPE sluice_backend_up gauge\n");
	for (unsigned b = 0; !err && b < h->n; b++)
		err = buf_printf(out, "sluice_backend_up{backend=\"%s\"} %d\n",
				 h->cfg->backends[b].name, health_up(h, b) ? 1 : 0);
	if (!err)
		err = buf_printf(out, "# HELP sluice_backend_health_checks_total Active health "
				 "checks by result\n# TYPE sluice_backend_health_checks_total "
				 "counter\n");
	for (unsigned b = 0; !err && b < h->n; b++) {
		const struct health_target *t = &h->t[b];
		if (!t->checked)
			continue;
		uint64_t all = __atomic_load_n(&t->checks, __ATOMIC_RELAXED);
		uint64_t bad = __atomic_load_n(&t->failed, __ATOMIC_RELAXED);
		const char *name = h->cfg->backends[b].name;
		err = buf_printf(out, "sluice_backend_health_checks_total{backend=\"%s\",result="
				 "\"ok\"} %" PRIu64 "\nsluice_backend_health_checks_total{backend="
				 "\"%s\",result=\"failed\"} %" PRIu64 "\n", name,
				 all > bad ? all - bad : 0, name, bad);
	}
	return err;
}
