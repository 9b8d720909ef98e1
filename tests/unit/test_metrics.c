/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <regex.h>

#include "obs/metrics.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

/* ---- fixtures ---- */

static struct backend_cfg two_backends[2] = {
	{ .name = (char *)"local", .index = 0 },
	{ .name = (char *)"remote", .index = 1 },
};
static struct backend_cfg swapped_backends[2] = {
	{ .name = (char *)"remote", .index = 0 },
	{ .name = (char *)"local", .index = 1 },
};
static const struct sluice_config cfg = { .backends = two_backends, .nbackends = 2 };
static const struct sluice_config cfg_swapped = { .backends = swapped_backends, .nbackends = 2 };

static struct request_record rec(const char *model, int backend, int status)
{
	struct request_record r = {
		.model = model ? str_from(model) : STR_NULL,
		.backend = backend,
		.status = status,
		.latency_ns = 1000000,
		.usage = { -1, -1, -1, -1, -1 },
	};
	return r;
}

static void done(struct metrics *m, const char *model, int backend, int status, int times)
{
	struct request_record r = rec(model, backend, status);

	for (int i = 0; i < times; i++)
		metrics_request_done(m, &r);
}

/* The rendered page, NUL-terminated; the caller frees it. */
static char *render(struct metrics *const *workers, size_t n)
{
	struct buf out = { 0 };

	assert_int_equal(metrics_render(workers, n, &out), 0);
	assert_int_equal(buf_append(&out, "", 1), 0);
	return out.data;
}

/* The value of the sample whose name and labels are exactly `series`, or
 * NULL when the page has no such line. */
static const char *sample(const char *page, const char *series)
{
	static char value[64];
	size_t n = strlen(series);

	for (const char *p = page; *p; p = strchr(p, '\n') + 1) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			size_t len = strcspn(p + n + 1, "\n");
			assert_true(len < sizeof(value));
			memcpy(value, p + n + 1, len);
			value[len] = '\0';
			return value;
		}
		if (!strchr(p, '\n'))
			break;
	}
	return NULL;
}

static void assert_sample(const char *page, const char *series, const char *want)
{
	const char *got = sample(page, series);

	if (!got)
		fail_msg("no sample %s in:\n%s", series, page);
	assert_string_equal(got, want);
}

static size_t count_substr(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle))) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* ---- tests ---- */

static void test_requests_summed_by_model_name(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };

	/* The workers intern the models in different orders. */
	done(w[0], "mock-small", 0, 200, 2);
	done(w[0], "mock-large", 1, 200, 1);
	done(w[1], "mock-large", 1, 429, 4);
	done(w[1], "mock-small", 0, 200, 1);
	done(w[1], "mock-small", 1, 502, 1);
	done(w[1], NULL, -1, 404, 5);

	char *page = render(w, 2);
	assert_sample(page, "sluice_requests_total{model=\"mock-small\",backend=\"local\",status=\"200\"}", "3");
	assert_sample(page, "sluice_requests_total{model=\"mock-small\",backend=\"remote\",status=\"502\"}", "1");
	assert_sample(page, "sluice_requests_total{model=\"mock-large\",backend=\"remote\",status=\"200\"}", "1");
	assert_sample(page, "sluice_requests_total{model=\"mock-large\",backend=\"remote\",status=\"429\"}", "4");
	assert_sample(page, "sluice_requests_total{model=\"none\",backend=\"none\",status=\"404\"}", "5");
	assert_null(sample(page, "sluice_requests_total{model=\"mock-small\",backend=\"local\",status=\"404\"}"));
	assert_int_equal(count_substr(page, "sluice_requests_total{"), 5);
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_backends_summed_by_name(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg_swapped) };

	done(w[0], "m", 0, 200, 1);	/* local */
	done(w[1], "m", 1, 200, 2);	/* local in the other config */
	metrics_upstream_error(w[0], 1, UPSTREAM_ERR_TIMEOUT);	/* remote */
	metrics_upstream_error(w[1], 0, UPSTREAM_ERR_TIMEOUT);	/* remote */
	metrics_upstream_error(w[1], 0, UPSTREAM_ERR_TLS);
	metrics_upstream_error(w[1], 2, UPSTREAM_ERR_TLS);	/* no such backend */

	char *page = render(w, 2);
	assert_sample(page, "sluice_requests_total{model=\"m\",backend=\"local\",status=\"200\"}", "3");
	assert_sample(page, "sluice_upstream_errors_total{backend=\"remote\",kind=\"timeout\"}", "2");
	assert_sample(page, "sluice_upstream_errors_total{backend=\"remote\",kind=\"tls\"}", "1");
	assert_int_equal(count_substr(page, "sluice_upstream_errors_total{"), 2);
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_status_outside_the_table(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);

	done(m, "m", 0, 201, 1);
	done(m, "m", 0, 206, 1);
	done(m, "m", 0, 507, 2);
	done(m, "m", 0, 0, 1);
	done(m, "m", 0, 499, 1);

	char *page = render(&m, 1);
	assert_sample(page, "sluice_requests_total{model=\"m\",backend=\"local\",status=\"2xx\"}", "2");
	assert_sample(page, "sluice_requests_total{model=\"m\",backend=\"local\",status=\"5xx\"}", "2");
	assert_sample(page, "sluice_requests_total{model=\"m\",backend=\"local\",status=\"other\"}", "1");
	assert_sample(page, "sluice_requests_total{model=\"m\",backend=\"local\",status=\"499\"}", "1");
	free(page);
	metrics_free(m);
}

static void observe(struct metrics *m, uint64_t latency_ns, uint64_t ttft_ns)
{
	struct request_record r = rec("h", 0, 200);

	r.latency_ns = latency_ns;
	r.ttft_ns = ttft_ns;
	metrics_request_done(m, &r);
}

static void test_histograms(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };

	observe(w[0], 500000, 0);		/* 0.5 ms, no first byte */
	observe(w[0], 1000000, 1000000);	/* exactly 1 ms: le="0.001" */
	observe(w[1], 3000000, 0);
	observe(w[1], 2000000000, 2500000);	/* 2 s, ttft 2.5 ms */
	observe(w[1], UINT64_C(100000000000), 0);	/* 100 s: +Inf only */

	char *page = render(w, 2);
	static const char *const le[] = {
		"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
		"0.5", "1", "2.5", "5", "10", "30", "60", "+Inf",
	};
	static const char *const want[] = {
		"2", "2", "3", "3", "3", "3", "3", "3", "3", "3", "4", "4", "4", "4", "4", "5",
	};
	char series[128];
	for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		snprintf(series, sizeof(series),
			 "sluice_request_duration_seconds_bucket{model=\"h\",le=\"%s\"}", le[i]);
		assert_sample(page, series, want[i]);
	}
	assert_sample(page, "sluice_request_duration_seconds_count{model=\"h\"}", "5");
	assert_sample(page, "sluice_request_duration_seconds_sum{model=\"h\"}", "102.004500000");

	/* TTFT only for the two requests that sent a first byte. */
	assert_sample(page, "sluice_time_to_first_token_seconds_bucket{model=\"h\",le=\"0.001\"}", "1");
	assert_sample(page, "sluice_time_to_first_token_seconds_bucket{model=\"h\",le=\"0.0025\"}", "2");
	assert_sample(page, "sluice_time_to_first_token_seconds_bucket{model=\"h\",le=\"+Inf\"}", "2");
	assert_sample(page, "sluice_time_to_first_token_seconds_count{model=\"h\"}", "2");
	assert_sample(page, "sluice_time_to_first_token_seconds_sum{model=\"h\"}", "0.003500000");

	/* Models without observations have no series; "none" was interned
	 * up front but never observed. */
	assert_null(sample(page, "sluice_request_duration_seconds_count{model=\"none\"}"));
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_buckets_are_cumulative(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);

	for (uint64_t ns = 1000; ns < UINT64_C(200000000000); ns = ns * 3 + 7)
		observe(m, ns, ns / 2);

	char *page = render(&m, 1);
	const char *families[] = {
		"sluice_request_duration_seconds", "sluice_time_to_first_token_seconds",
	};
	for (size_t f = 0; f < 2; f++) {
		char prefix[128];
		unsigned long long prev = 0, n = 0, buckets = 0;
		snprintf(prefix, sizeof(prefix), "%s_bucket{model=\"h\",le=\"", families[f]);
		for (const char *p = strstr(page, prefix); p; p = strstr(p + 1, prefix)) {
			unsigned long long v = strtoull(strchr(p, ' ') + 1, NULL, 10);
			assert_true(v >= prev);
			prev = v;
			buckets++;
		}
		assert_int_equal(buckets, 16);
		snprintf(prefix, sizeof(prefix), "%s_count{model=\"h\"}", families[f]);
		n = strtoull(sample(page, prefix), NULL, 10);
		assert_int_equal(n, prev);
		assert_true(n > 10);
	}
	free(page);
	metrics_free(m);
}

static void test_tokens(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };
	struct request_record r = rec("t", 0, 200);

	r.usage.prompt_tokens = 10;
	r.usage.completion_tokens = 20;
	r.usage.cached_tokens = 0;
	metrics_request_done(w[0], &r);		/* reasoning unknown */
	r.usage.reasoning_tokens = 7;
	r.usage.cached_tokens = 4;
	metrics_request_done(w[1], &r);
	r = rec("t", 0, 500);			/* all unknown */
	metrics_request_done(w[1], &r);

	char *page = render(w, 2);
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"input\"}", "20");
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"output\"}", "40");
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"cached_input\"}", "4");
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"reasoning\"}", "7");
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

/* A backend that reports INT64_MAX tokens, again and again, on two
 * workers: the totals stop at the largest count instead of wrapping back
 * to small numbers (which a Prometheus server reads as a counter reset). */
static void test_tokens_saturate(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };
	struct request_record r = rec("t", 0, 200);

	r.usage.prompt_tokens = INT64_MAX;
	r.usage.completion_tokens = 5;
	for (int i = 0; i < 3; i++)
		metrics_request_done(w[0], &r);
	metrics_request_done(w[1], &r);
	metrics_request_done(w[1], &r);

	char *page = render(w, 1);
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"input\"}",
		      "18446744073709551615");
	free(page);
	page = render(w + 1, 1);
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"input\"}",
		      "18446744073709551614");
	free(page);
	page = render(w, 2);
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"input\"}",
		      "18446744073709551615");
	assert_sample(page, "sluice_tokens_total{model=\"t\",direction=\"output\"}", "25");
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_other_after_the_table_fills(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };
	char name[32];

	/* "none" holds the first of the 128 slots. */
	for (int i = 0; i < 129; i++) {
		snprintf(name, sizeof(name), "m-%d", i);
		done(w[0], name, 0, 200, 1);
	}
	done(w[0], "m-5", 0, 200, 1);		/* interned before the table filled */
	done(w[0], NULL, -1, 400, 1);		/* "none" never overflows */
	char long_name[300];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	done(w[1], long_name, 0, 200, 1);	/* too long to intern */
	done(w[1], "other", 0, 200, 1);		/* merges with the overflow */

	char *page = render(w, 2);
	assert_sample(page, "sluice_requests_total{model=\"m-126\",backend=\"local\",status=\"200\"}", "1");
	assert_sample(page, "sluice_requests_total{model=\"m-5\",backend=\"local\",status=\"200\"}", "2");
	assert_null(sample(page, "sluice_requests_total{model=\"m-127\",backend=\"local\",status=\"200\"}"));
	assert_sample(page, "sluice_requests_total{model=\"other\",backend=\"local\",status=\"200\"}", "4");
	assert_sample(page, "sluice_requests_total{model=\"none\",backend=\"none\",status=\"400\"}", "1");
	assert_int_equal(count_substr(page, "sluice_requests_total{"), 127 + 2);
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_label_escaping(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);

	done(m, "a\"b\\c\nd", 0, 200, 1);
	char *page = render(&m, 1);
	assert_sample(page, "sluice_requests_total{model=\"a\\\"b\\\\c\\nd\",backend=\"local\",status=\"200\"}", "1");
	free(page);
	metrics_free(m);
}

static void test_connections(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg) };

	for (int i = 0; i < 3; i++)
		metrics_conn_opened(w[0]);
	metrics_conn_closed(w[0]);
	metrics_conn_opened(w[1]);
	metrics_conn_opened(w[1]);
	metrics_conn_closed(w[1]);
	metrics_conn_closed(w[1]);
	metrics_conn_rejected(w[1]);

	char *page = render(w, 2);
	assert_sample(page, "sluice_connections_active", "2");
	assert_sample(page, "sluice_connections_total", "5");
	assert_sample(page, "sluice_connections_rejected_total", "1");
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

static void test_fresh_page_has_the_basics(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);
	char *page = render(&m, 1);

	assert_sample(page, "sluice_connections_active", "0");
	assert_sample(page, "sluice_connections_total", "0");
	assert_sample(page, "sluice_connections_rejected_total", "0");
	assert_sample(page, "sluice_build_info{version=\"" SLUICE_VERSION "\"}", "1");
	assert_null(strstr(page, "sluice_requests_total{"));
	free(page);
	metrics_free(m);

	page = render(NULL, 0);
	assert_sample(page, "sluice_connections_active", "0");
	free(page);
}

/* Every line is a comment or a well-formed sample, each family's HELP and
 * TYPE appear once, and the page ends with a newline. */
static void test_exposition_syntax(void **state)
{
	(void)state;
	struct metrics *w[2] = { metrics_new(&cfg), metrics_new(&cfg_swapped) };
	struct request_record r = rec("q\"\\\n", 1, 200);

	r.usage.prompt_tokens = 3;
	r.ttft_ns = 5;
	metrics_request_done(w[0], &r);
	done(w[1], "mock-small", 0, 503, 2);
	done(w[1], NULL, -1, 404, 1);
	metrics_upstream_error(w[1], 0, UPSTREAM_ERR_CONNECT);
	metrics_conn_opened(w[0]);

	char *page = render(w, 2);
	regex_t sample_re, comment_re;
	assert_int_equal(regcomp(&sample_re,
		"^[a-zA-Z_:][a-zA-Z0-9_:]*"
		"(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
		"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})?"
		" [0-9]+(\\.[0-9]+)?$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regcomp(&comment_re,
		"^# (HELP [a-z_]+ .+|TYPE [a-z_]+ (counter|gauge|histogram))$",
		REG_EXTENDED | REG_NOSUB), 0);

	size_t len = strlen(page);
	assert_true(len > 0 && page[len - 1] == '\n');
	size_t lines = 0;
	for (char *p = page, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (regexec(&sample_re, p, 0, NULL, 0) != 0 &&
		    regexec(&comment_re, p, 0, NULL, 0) != 0)
			fail_msg("bad line: %s", p);
		*nl = '\n';
		lines++;
	}
	assert_true(lines > 30);

	static const char *const families[] = {
		"sluice_requests_total", "sluice_tokens_total",
		"sluice_request_duration_seconds", "sluice_time_to_first_token_seconds",
		"sluice_upstream_errors_total", "sluice_connections_active",
		"sluice_connections_total", "sluice_connections_rejected_total",
		"sluice_build_info",
	};
	char line[128];
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s ", families[i]);
		assert_int_equal(count_substr(page, line), 1);
		snprintf(line, sizeof(line), "# HELP %s ", families[i]);
		assert_int_equal(count_substr(page, line), 1);
	}
	regfree(&sample_re);
	regfree(&comment_re);
	free(page);
	metrics_free(w[0]);
	metrics_free(w[1]);
}

/* Rendering appends, and leaves what the buffer held alone. */
static void test_render_appends(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);
	struct buf out = { 0 };

	assert_int_equal(buf_append(&out, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
	buf_consume(&out, 4);
	assert_int_equal(metrics_render(&m, 1, &out), 0);
	assert_memory_equal(buf_head(&out), "/1.1 200 OK\r\n\r\n# HELP ", 22);
	buf_free(&out);
	metrics_free(m);
}

static void *intern_many(void *arg)
{
	struct metrics *m = arg;
	char name[48];

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 200; i++) {
			snprintf(name, sizeof(name), "model-%03d-%s", i, "abcdefghijklmnop");
			done(m, name, i % 2, 200, 1);
		}
	}
	return NULL;
}

/* A scrape racing the worker that interns: every model label it shows is
 * a whole name, never one caught half-written. */
static void test_scrape_while_interning(void **state)
{
	(void)state;
	struct metrics *m = metrics_new(&cfg);
	pthread_t writer;
	static const char label[] = "sluice_requests_total{model=\"";

	assert_int_equal(pthread_create(&writer, NULL, intern_many, m), 0);
	for (int scrape = 0; scrape < 50; scrape++) {
		char *page = render(&m, 1);
		for (const char *p = strstr(page, label); p; p = strstr(p + 1, label)) {
			const char *name = p + sizeof(label) - 1;
			size_t len = strcspn(name, "\"");
			if (strncmp(name, "other\"", 6) == 0)
				continue;
			assert_int_equal(len, strlen("model-000-abcdefghijklmnop"));
			assert_memory_equal(name + 9, "-abcdefghijklmnop\"", 18);
		}
		free(page);
	}
	assert_int_equal(pthread_join(writer, NULL), 0);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests_summed_by_model_name),
		cmocka_unit_test(test_backends_summed_by_name),
		cmocka_unit_test(test_status_outside_the_table),
		cmocka_unit_test(test_histograms),
		cmocka_unit_test(test_buckets_are_cumulative),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_tokens_saturate),
		cmocka_unit_test(test_other_after_the_table_fills),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_connections),
		cmocka_unit_test(test_fresh_page_has_the_basics),
		cmocka_unit_test(test_exposition_syntax),
		cmocka_unit_test(test_render_appends),
		cmocka_unit_test(test_scrape_while_interning),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
