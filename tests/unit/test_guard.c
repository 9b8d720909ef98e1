/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "api/json.h"
#include "guard/guard.h"
#include "guard/guard_int.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct guard_policy *compile_all(enum guard_action a, unsigned hold_back)
{
	struct guard_policy_spec spec = { .name = "t", .response = true, .hold_back = hold_back,
					  .topics_action = GUARD_BLOCK };
	struct guard_policy *p = NULL;
	char why[256];
	unsigned line;

	for (unsigned e = 0; e < GUARD_BUILTIN_N; e++)
		spec.detect[e] = a;
	int rc = guard_policy_compile(&spec, &p, why, sizeof(why), &line);
	if (rc)
		fail_msg("compile: %s", why);
	return p;
}

/* ---- the corpus ------------------------------------------------------- */

struct row {
	int entity;
	bool positive;
	char *text;
	size_t len;
};

static struct row *rows;
static size_t nrows;

/* tests/guard/corpus.tsv: entity TAB +/- TAB text, "\n" for a newline. */
static void load_corpus(void)
{
	const char *path = getenv("GUARD_CORPUS") ? getenv("GUARD_CORPUS") : "tests/guard/corpus.tsv";
	FILE *fp = fopen(path, "r");
	char line[4096];

	if (!fp)
		fail_msg("cannot open %s (run from the repository root)", path);
	while (fgets(line, sizeof(line), fp)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = '\0';
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		assert_non_null(t2);
		*t1 = *t2 = '\0';
		rows = realloc(rows, (nrows + 1) * sizeof(*rows));
		struct row *r = &rows[nrows++];
		r->entity = guard_builtin_parse(line);
		assert_true(r->entity >= 0);
		r->positive = t1[1] == '+';
		r->text = malloc(strlen(t2 + 1) + 1);
		size_t n = 0;
		for (const char *s = t2 + 1; *s; s++) {
			if (s[0] == '\\' && s[1] == 'n') {
				r->text[n++] = '\n';
				s++;
			} else {
				r->text[n++] = *s;
			}
		}
		r->text[n] = '\0';
		r->len = n;
	}
	fclose(fp);
	assert_true(nrows > 100);
}

static int corpus_setup(void **state)
{
	(void)state;
	if (!rows)
		load_corpus();
	return 0;
}

/* Precision and recall per entity over the shipped corpus: every row
 * counts for its own entity (a near miss is a false positive only for the
 * entity it is a near miss of). */
static void test_corpus_quality(void **state)
{
	struct guard_policy *p = compile_all(GUARD_FLAG, 64);
	struct guard_scratch s = { 0 };
	unsigned tp[GUARD_BUILTIN_N] = { 0 }, fp[GUARD_BUILTIN_N] = { 0 }, fn[GUARD_BUILTIN_N] = { 0 };
	bool bad = false;

	(void)state;
	for (size_t i = 0; i < nrows; i++) {
		struct guard_result res = { 0 };
		assert_int_equal(guard_scan(p, &s, rows[i].text, rows[i].len, &res), 0);
		bool hit = res.hits & (1ull << rows[i].entity);
		if (rows[i].positive && hit)
			tp[rows[i].entity]++;
		else if (rows[i].positive)
			fn[rows[i].entity]++;
		else if (hit)
			fp[rows[i].entity]++;
		if (rows[i].positive != hit)
			printf("  miss: %s %c %s\n", guard_entity_name(p, (unsigned)rows[i].entity),
			       rows[i].positive ? '+' : '-', rows[i].text);
	}
	for (unsigned e = 0; e < GUARD_BUILTIN_N; e++) {
		double prec = tp[e] + fp[e] ? (double)tp[e] / (tp[e] + fp[e]) : 0;
		double rec = tp[e] + fn[e] ? (double)tp[e] / (tp[e] + fn[e]) : 0;
		printf("  %-17s precision %.3f recall %.3f (tp %u fp %u fn %u)\n",
		       guard_entity_name(p, e), prec, rec, tp[e], fp[e], fn[e]);
		bad |= prec < 0.98 || rec < 0.98;
	}
	guard_scratch_free(&s);
	guard_policy_free(p);
	assert_false(bad);
}

/* Stream text through a window in the chunks that end at cuts[]. */
static void stream(const struct guard_policy *p, struct guard_scratch *s, const char *text,
		   size_t len, const size_t *cuts, size_t ncuts, struct buf *out,
		   struct guard_window *w)
{
	size_t at = 0;

	guard_window_init(w, p);
	buf_reset(out);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		assert_int_equal(guard_window_feed(w, s, text + at, end - at, out), 0);
		at = end;
	}
	assert_int_equal(guard_window_finish(w, s, out), 0);
	guard_window_free(w);
}

static void expect_same(const struct buf *got, const struct buf *want, const char *text)
{
	if (buf_used(got) != buf_used(want) || memcmp(buf_head(got), buf_head(want), buf_used(want)))
		fail_msg("split stream differs for \"%s\":\n got  %.*s\n want %.*s", text,
			 (int)buf_used(got), buf_head(got), (int)buf_used(want), buf_head(want));
}

static const char filler[] = "The quarterly report is attached; let me know what you "
			     "think of the numbers before the meeting.";

/* Every positive, split into two, three and ten chunks at every offset,
 * comes out of the window exactly as the whole text masks: no recall is
 * lost at a chunk boundary and nothing of an entity slips out. */
static void test_corpus_chunk_splits(void **state)
{
	struct guard_policy *p = compile_all(GUARD_MASK, 64);
	struct guard_scratch s = { 0 };
	struct guard_window w;
	struct buf want = { 0 }, got = { 0 };
	size_t cuts[9];

	(void)state;
	char t[1024];

	for (size_t r = 0; r < nrows; r++) {
		struct guard_result res = { 0 };

		if (!rows[r].positive)
			continue;
		/* Prose around the row, so the window releases text mid-stream
		 * and cuts fall before, inside and after the entity. */
		int n = snprintf(t, sizeof(t), "%s %s %s", filler, rows[r].text, filler);
		assert_true(n > 0 && (size_t)n < sizeof(t));
		buf_reset(&want);
		assert_int_equal(guard_scan(p, &s, t, (size_t)n, &res), 0);
		assert_int_equal(guard_mask_append(p, &s, t, 0, (size_t)n, &want), 0);
		assert_true(memmem(buf_head(&want), buf_used(&want), "[", 1) != NULL);
		for (size_t a = 1; a < (size_t)n; a++) {
			cuts[0] = a;
			stream(p, &s, t, (size_t)n, cuts, 1, &got, &w);
			expect_same(&got, &want, t);
			for (size_t b = a + 1; b < (size_t)n; b += 1 + (b - a) / 4) {
				cuts[1] = b;
				stream(p, &s, t, (size_t)n, cuts, 2, &got, &w);
				expect_same(&got, &want, t);
			}
		}
		/* Ten chunks: nine cuts at n/10 strides, shifted through every offset. */
		for (size_t shift = 0; shift < (size_t)n; shift++) {
			for (size_t k = 0; k < 9; k++)
				cuts[k] = ((k + 1) * (size_t)n / 10 + shift) % (size_t)n;
			for (size_t k = 1; k < 9; k++)	/* keep them ascending */
				for (size_t j = k; j > 0 && cuts[j - 1] > cuts[j]; j--) {
					size_t tmp = cuts[j];
					cuts[j] = cuts[j - 1];
					cuts[j - 1] = tmp;
				}
			stream(p, &s, t, (size_t)n, cuts, 9, &got, &w);
			expect_same(&got, &want, t);
		}
	}
	buf_free(&want);
	buf_free(&got);
	guard_scratch_free(&s);
	guard_policy_free(p);
}

/* ---- validators --------------------------------------------------------- */

static void test_validators(void **state)
{
	(void)state;
	assert_true(guard_luhn_ok("4111 1111 1111 1111", 19));
	assert_false(guard_luhn_ok("4111111111111112", 16));
	assert_true(guard_iban_ok("DE89 3704 0044 0532 0130 00", 27));
	assert_false(guard_iban_ok("DE89370400440532013001", 22));
	assert_false(guard_iban_ok("DE8937040044053201300", 21));
	assert_true(guard_ssn_ok("536-22-1234", 11));
	assert_false(guard_ssn_ok("666-22-1234", 11));
	assert_false(guard_ssn_ok("536-00-1234", 11));
}

/* ---- the JSON rewrite --------------------------------------------------- */

static struct guard_policy *default_policy(void)
{
	struct guard_policy_spec spec;
	struct guard_policy *p = NULL;
	char why[256];
	unsigned line;

	guard_spec_example(&spec);
	assert_int_equal(guard_policy_compile(&spec, &p, why, sizeof(why), &line), 0);
	return p;
}

static void rewrite_expect(const struct guard_policy *p, const char *in, const char *want,
			   struct guard_result *res)
{
	struct guard_scratch s = { 0 };
	struct buf out = { 0 };
	struct json_val root;
	bool rewritten;

	memset(res, 0, sizeof(*res));
	assert_int_equal(guard_rewrite_json(p, &s, in, strlen(in), &out, &rewritten, res), 0);
	if (!want) {
		assert_false(rewritten);
	} else {
		assert_true(rewritten);
		if (buf_used(&out) != strlen(want) || memcmp(buf_head(&out), want, strlen(want)))
			fail_msg("got  %.*s\nwant %s", (int)buf_used(&out), buf_head(&out), want);
		assert_int_equal(json_parse(buf_head(&out), buf_used(&out), &root, NULL, NULL), 0);
	}
	buf_free(&out);
	guard_scratch_free(&s);
}

static void test_rewrite_json(void **state)
{
	struct guard_policy *p = default_policy();
	struct guard_result r;

	(void)state;
	/* The model name is structure; the content is masked; spacing kept. */
	rewrite_expect(p, "{\"model\": \"bob@example.com\",  \"messages\":[{\"role\":\"user\","
		       "\"content\":\"mail bob@example.com now\"}]}",
		       "{\"model\": \"bob@example.com\",  \"messages\":[{\"role\":\"user\","
		       "\"content\":\"mail [EMAIL] now\"}]}", &r);
	assert_true(r.masked & (1u << GUARD_EMAIL));
	/* Escapes are read: \u0040 is '@'; the rest of the string re-escaped. */
	rewrite_expect(p, "{\"messages\":[{\"content\":\"a\\nbob\\u0040example.com \\\"q\\\"\"}]}",
		       "{\"messages\":[{\"content\":\"a\\n[EMAIL] \\\"q\\\"\"}]}", &r);
	/* Array content parts and tool-call arguments (JSON inside a string). */
	rewrite_expect(p, "{\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"call "
		       "+44 20 7946 0958\"}]},{\"tool_calls\":[{\"function\":{\"arguments\":"
		       "\"{\\\"to\\\":\\\"x@y.fr\\\"}\"}}]}]}",
		       "{\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"call "
		       "[PHONE]\"}]},{\"tool_calls\":[{\"function\":{\"arguments\":"
		       "\"{\\\"to\\\":\\\"[EMAIL]\\\"}\"}}]}]}", &r);
	/* Nothing to mask: no new body; flag and block are reported. */
	rewrite_expect(p, "{\"input\":\"ping 8.8.8.8\"}", NULL, &r);
	assert_true(r.flagged & (1u << GUARD_IP_ADDRESS));
	rewrite_expect(p, "{\"prompt\":[\"x\",\"key AKIAIOSFODNN7EXAMPLE\"]}", NULL, &r);
	assert_true(r.blocked & (1u << GUARD_SECRETS));
	guard_policy_free(p);
}

/* ---- custom rules, word lists and topics ----------------------------- */

static void test_custom_and_topics(void **state)
{
	char *words[] = { "Globex", "Initech Corp" };
	char *deny[] = { "crypto trading" };
	char *allow[] = { "invoice", "billing" };
	struct guard_custom_spec custom[] = {
		{ .name = "project_codename", .regex = "(?i)project\\s+nightjar",
		  .action = GUARD_BLOCK, .line = 10 },
		{ .name = "competitors", .words = words, .nwords = 2, .action = GUARD_MASK,
		  .line = 11 },
	};
	struct guard_policy_spec spec = { .name = "c", .custom = custom, .ncustom = 2,
		.topics_deny = deny, .ntopics_deny = 1, .topics_allow = allow,
		.ntopics_allow = 2, .topics_action = GUARD_BLOCK, .hold_back = 64 };
	struct guard_policy *p;
	struct guard_result r;
	char why[256], list[128];
	unsigned line;

	(void)state;
	assert_int_equal(guard_policy_compile(&spec, &p, why, sizeof(why), &line), 0);
	rewrite_expect(p, "{\"input\":\"invoice for PROJECT  Nightjar\"}", NULL, &r);
	assert_true(r.blocked & (1ull << GUARD_CUSTOM0));
	guard_entity_list(p, r.blocked, list, sizeof(list));
	assert_string_equal(list, "project_codename");
	rewrite_expect(p, "{\"input\":\"billing vs initech   corp and globexx\"}",
		       "{\"input\":\"billing vs [COMPETITORS] and globexx\"}", &r);
	assert_false(r.blocked);
	rewrite_expect(p, "{\"input\":\"invoice about Crypto Trading\"}", NULL, &r);
	assert_true(r.blocked & (1ull << GUARD_TOPIC));
	/* Nothing from the allow list: off-topic. */
	rewrite_expect(p, "{\"input\":\"write me a poem\"}", NULL, &r);
	assert_true(r.blocked & (1ull << GUARD_TOPIC));
	guard_policy_free(p);

	/* A construct Hyperscan does not support is a config error at its line. */
	custom[0].regex = "(a)\\1";
	assert_int_equal(guard_policy_compile(&spec, &p, why, sizeof(why), &line), -EINVAL);
	assert_int_equal(line, 10);
	assert_non_null(strstr(why, "Hyperscan"));
	custom[0].regex = "x*";		/* matches the empty string */
	assert_int_equal(guard_policy_compile(&spec, &p, why, sizeof(why), &line), -EINVAL);
	assert_int_equal(line, 10);
}

/* ---- streams ------------------------------------------------------------ */

static void test_window_block_split_secret(void **state)
{
	struct guard_policy *p = default_policy();
	struct guard_scratch s = { 0 };
	struct guard_window w;
	struct buf out = { 0 };
	const char *chunks[] = { "Here is the key: AKIAIOSF", "ODNN7EXA", "MPLE and more text" };

	(void)state;
	guard_window_init(&w, p);
	for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
		assert_int_equal(guard_window_feed(&w, &s, chunks[i], strlen(chunks[i]), &out), 0);
	assert_int_equal(guard_window_finish(&w, &s, &out), 0);
	assert_true(w.blocked);
	assert_true(w.res.blocked & (1u << GUARD_SECRETS));
	/* Nothing of the key went out. */
	assert_true(!out.data || !memmem(buf_head(&out), buf_used(&out), "AKIA", 4));
	guard_window_free(&w);

	/* The cut never splits a UTF-8 sequence. */
	buf_reset(&out);
	guard_window_init(&w, p);
	assert_int_equal(guard_window_feed(&w, &s, "caf\xc3", 4, &out), 0);
	for (size_t i = 0; i < buf_used(&out); i++)
		assert_true((unsigned char)buf_head(&out)[i] < 0x80);
	assert_int_equal(guard_window_feed(&w, &s, "\xa9!", 2, &out), 0);
	assert_int_equal(guard_window_finish(&w, &s, &out), 0);
	assert_int_equal(buf_used(&out), 6);
	assert_memory_equal(buf_head(&out), "caf\xc3\xa9!", 6);
	guard_window_free(&w);
	buf_free(&out);
	guard_scratch_free(&s);
	guard_policy_free(p);
}

/* ---- hostile input ------------------------------------------------------ */

static void test_hostile_bodies(void **state)
{
	struct guard_policy *p = default_policy();
	struct guard_scratch s = { 0 };
	struct guard_result r = { 0 };
	struct buf body = { 0 }, out = { 0 };
	bool rewritten;

	(void)state;
	/* 8 MiB of prose with one e-mail at the very end. */
	buf_append_cstr(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
	while (buf_used(&body) < (8u << 20))
		buf_append_cstr(&body, "the quick brown fox jumps over the lazy dog. ");
	buf_append_cstr(&body, "bob@example.com\"}]}");
	assert_int_equal(guard_rewrite_json(p, &s, buf_head(&body), buf_used(&body), &out,
					    &rewritten, &r), 0);
	assert_true(rewritten);
	assert_non_null(memmem(buf_head(&out), buf_used(&out), "[EMAIL]\"}]}", 11));

	/* 100k tiny parts, each with an address. */
	buf_reset(&body);
	buf_reset(&out);
	buf_append_cstr(&body, "{\"input\":[");
	for (int i = 0; i < 100000; i++)
		buf_printf(&body, "%s\"u%d@x.io\"", i ? "," : "", i);
	buf_append_cstr(&body, "]}");
	memset(&r, 0, sizeof(r));
	assert_int_equal(guard_rewrite_json(p, &s, buf_head(&body), buf_used(&body), &out,
					    &rewritten, &r), 0);
	assert_true(rewritten);
	assert_null(memmem(buf_head(&out), buf_used(&out), "@x.io", 5));

	/* Invalid UTF-8 around an entity: found, and the output is valid JSON. */
	static const char bad[] = "{\"input\":\"\xff\xfe bob@example.com \xc3\"}";
	buf_reset(&out);
	assert_int_equal(guard_rewrite_json(p, &s, bad, sizeof(bad) - 1, &out, &rewritten, &r),
			 -EINVAL);	/* json_parse refuses it: the exchange already did */
	buf_free(&body);
	buf_free(&out);
	guard_scratch_free(&s);
	guard_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validators),
		cmocka_unit_test_setup(test_corpus_quality, corpus_setup),
		cmocka_unit_test_setup(test_corpus_chunk_splits, corpus_setup),
		cmocka_unit_test(test_rewrite_json),
		cmocka_unit_test(test_custom_and_topics),
		cmocka_unit_test(test_window_block_split_secret),
		cmocka_unit_test(test_hostile_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
