/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guardbench: what the guardrails cost, next to what the gateway already
 * pays for the same bytes (json_parse of the request).
 *
 *   guardbench [-r RUNS]
 *
 * Policy: the default (every built-in detector on: email, phone,
 * iban, us_ssn on mask, credit_card and secrets on block, ip_address and
 * prompt_injection on flag), hold_back 64.  Cases, each the median of RUNS
 * (default 5) timed loops on one thread:
 *   scan          guard_scan over 16 MiB of English prose with an entity
 *                 every ~2 KiB: GB/s
 *   request_4k    guard_rewrite_json of a 4 KiB chat request with two
 *                 e-mails to mask: µs per request, and json_parse of the
 *                 same body for scale
 *   first_chunk   a stream's window set up and fed its first delta
 *                 ("Hello"): the added time to first token, µs
 *   chunk         one more 24-byte delta into a warm window: µs per chunk
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy
 * machine's preemptions do not count as guardrail cost.
 * Prints a markdown section "## Guardrails" and the summary line
 *   guard: scan_gbps=X request_4k_us=Y first_chunk_us=Z chunk_us=W
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/json.h"
#include "guard/guard.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static struct guard_policy *default_policy(void)
{
	struct guard_policy_spec spec;
	struct guard_policy *p;
	char why[256];
	unsigned line;

	guard_spec_example(&spec);
	if (guard_policy_compile(&spec, &p, why, sizeof(why), &line)) {
		fprintf(stderr, "guardbench: %s\n", why);
		exit(1);
	}
	return p;
}

static const char prose[] =
	"The committee met on Tuesday to review the quarterly figures, and the "
	"discussion ran well past the hour. Revenue in the northern region grew "
	"by 4.5 percent while costs stayed flat; the new warehouse opened in "
	"March and is already at 80 percent of capacity. Several members asked "
	"for a clearer breakdown of the marketing spend before the next round. ";

/* Prose with an entity (an address, a phone number) about every 2 KiB. */
static void fill_prose(struct buf *b, size_t size)
{
	unsigned i = 0;

	while (buf_used(b) < size) {
		buf_append_cstr(b, prose);
		if (++i % 6 == 0)
			buf_append_cstr(b, i % 12 ? "Write to ops@example.com today. "
						  : "Call +44 20 7946 0958 now. ");
	}
}

static double bench_scan(const struct guard_policy *p, struct guard_scratch *s, int runs)
{
	struct buf text = { 0 };
	double r[32];

	fill_prose(&text, 16u << 20);
	for (int i = 0; i < runs; i++) {
		struct guard_result res = { 0 };
		double t = now_s();
		if (guard_scan(p, s, buf_head(&text), buf_used(&text), &res))
			exit(1);
		r[i] = (double)buf_used(&text) / (now_s() - t) / 1e9;
	}
	buf_free(&text);
	return median(r, runs);
}

static void bench_request(const struct guard_policy *p, struct guard_scratch *s, int runs,
			  double *guard_us, double *parse_us)
{
	struct buf body = { 0 }, text = { 0 }, out = { 0 };
	double g[32], j[32];
	const int iters = 20000;

	fill_prose(&text, 4000);
	buf_append_cstr(&body, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":"
			"\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"");
	buf_append(&body, buf_head(&text), 4096 - 160 - buf_used(&body));
	buf_append_cstr(&body, " Reply to ann@example.org.\"}],\"stream\":true}");
	for (int i = 0; i < runs; i++) {
		struct json_val root;
		double t = now_s();
		for (int k = 0; k < iters; k++) {
			struct guard_result res = { 0 };
			bool rewritten;
			buf_reset(&out);
			if (guard_rewrite_json(p, s, buf_head(&body), buf_used(&body), &out,
					       &rewritten, &res) || !rewritten)
				exit(1);
		}
		g[i] = (now_s() - t) / iters * 1e6;
		t = now_s();
		for (int k = 0; k < iters; k++)
			if (json_parse(buf_head(&body), buf_used(&body), &root, NULL, NULL))
				exit(1);
		j[i] = (now_s() - t) / iters * 1e6;
	}
	*guard_us = median(g, runs);
	*parse_us = median(j, runs);
	buf_free(&body);
	buf_free(&text);
	buf_free(&out);
}

static void bench_stream(const struct guard_policy *p, struct guard_scratch *s, int runs,
			 double *first_us, double *chunk_us)
{
	static const char delta[] = "the figures for the week";	/* 24 bytes */
	struct buf out = { 0 };
	double f[32], c[32];
	const int iters = 100000;

	for (int i = 0; i < runs; i++) {
		struct guard_window w;
		double t = now_s();
		for (int k = 0; k < iters; k++) {
			guard_window_init(&w, p);
			buf_reset(&out);
			guard_window_feed(&w, s, "Hello", 5, &out);
			guard_window_free(&w);
		}
		f[i] = (now_s() - t) / iters * 1e6;
		guard_window_init(&w, p);
		t = now_s();
		for (int k = 0; k < iters; k++) {
			buf_reset(&out);
			guard_window_feed(&w, s, delta, sizeof(delta) - 1, &out);
		}
		c[i] = (now_s() - t) / iters * 1e6;
		guard_window_free(&w);
	}
	*first_us = median(f, runs);
	*chunk_us = median(c, runs);
	buf_free(&out);
}

int main(int argc, char **argv)
{
	int runs = 5, opt;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r' || (runs = atoi(optarg)) < 1 || runs > 32) {
			fprintf(stderr, "usage: guardbench [-r RUNS (1..32)]\n");
			return 2;
		}
	}
	struct guard_policy *p = default_policy();
	struct guard_scratch s = { 0 };
	double gbps = bench_scan(p, &s, runs), req_us, parse_us, first_us, chunk_us;

	bench_request(p, &s, runs, &req_us, &parse_us);
	bench_stream(p, &s, runs, &first_us, &chunk_us);
	printf("## Guardrails\n\n"
	       "`guardbench -r %d` (tools/guardbench), one thread, the default policy "
	       "(every built-in detector on), median of %d runs.\n\n"
	       "| case | figure | target |\n|---|---:|---|\n"
	       "| scan, prose with sparse entities | %.2f GB/s | >= 1 GB/s per core |\n"
	       "| 4 KiB chat request, rewrite with 2 masks | %.2f µs (json_parse alone: %.2f µs, %.1fx) | <= 5 µs |\n"
	       "| first stream chunk (window set up + first delta) | %.3f µs | <= 50 µs added TTFT |\n"
	       "| each further 24-byte delta | %.3f µs | |\n\n",
	       runs, runs, gbps, req_us, parse_us, req_us / parse_us, first_us, chunk_us);
	printf("guard: scan_gbps=%.2f request_4k_us=%.2f first_chunk_us=%.3f chunk_us=%.3f\n",
	       gbps, req_us, first_us, chunk_us);
	guard_scratch_free(&s);
	guard_policy_free(p);
	return 0;
}
