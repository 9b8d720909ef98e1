/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the guardrails' stream window (guard/guard.h).
 *
 * The first two bytes choose how the rest is cut into chunks (how many,
 * and a seed for where); the rest is the model's text.  Checks:
 *   - a stream is blocked exactly when the whole text has a blocking hit;
 *   - otherwise what the window released, whatever the chunking, is
 *     byte for byte the whole text masked in one go: no entity slips out
 *     at a chunk boundary and no text is lost or doubled.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"

#define MAX_TEXT 3000	/* below the window's 4 KiB word bound */

static struct guard_policy *pol;
static struct guard_scratch scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct guard_policy_spec spec = { .name = "fuzz", .response = true, .hold_back = 64,
					  .topics_action = GUARD_OFF };
	char why[256];
	unsigned line;

	(void)argc;
	(void)argv;
	for (unsigned e = 0; e < GUARD_BUILTIN_N; e++)
		spec.detect[e] = GUARD_MASK;
	spec.detect[GUARD_SECRETS] = GUARD_BLOCK;
	if (guard_policy_compile(&spec, &pol, why, sizeof(why), &line))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guard_result whole_res = { 0 };
	struct buf whole = { 0 }, got = { 0 };
	struct guard_window w;

	if (size < 3 || size - 2 > MAX_TEXT)
		return 0;
	unsigned nchunks = 1 + data[0] % 12;
	uint32_t seed = data[1] * 2654435761u + 1;
	const char *text = (const char *)data + 2;
	size_t len = size - 2;

	if (guard_scan(pol, &scratch, text, len, &whole_res) != 0)
		return 0;
	if (guard_mask_append(pol, &scratch, text, 0, len, &whole))
		abort();

	guard_window_init(&w, pol);
	size_t at = 0;
	for (unsigned i = 0; i < nchunks && at < len; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t n = i + 1 == nchunks ? len - at : (seed >> 8) % (len - at + 1);
		FUZZ_CHECK(guard_window_feed(&w, &scratch, text + at, n, &got) == 0, "feed");
		at += n;
	}
	FUZZ_CHECK(guard_window_feed(&w, &scratch, text + at, len - at, &got) == 0, "feed");
	FUZZ_CHECK(guard_window_finish(&w, &scratch, &got) == 0, "finish");
	FUZZ_CHECK(w.blocked == (whole_res.blocked != 0), "blocked %d vs whole %d", w.blocked,
		   whole_res.blocked != 0);
	if (!w.blocked)
		FUZZ_CHECK(buf_used(&got) == buf_used(&whole) &&
			   memcmp(buf_head(&got), buf_head(&whole), buf_used(&got)) == 0,
			   "stream\n%.*s\nwhole\n%.*s", (int)buf_used(&got), buf_head(&got),
			   (int)buf_used(&whole), buf_head(&whole));
	guard_window_free(&w);
	buf_free(&whole);
	buf_free(&got);
	return 0;
}
