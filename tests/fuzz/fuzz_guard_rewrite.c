/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the guardrails' request rewrite (guard/guard.h).
 *
 * For a body json_parse() accepts, with every detector on mask (secrets
 * on block) and a custom word list:
 *   - the rewrite never fails but for out-of-memory or too many candidates;
 *   - a rewritten body is valid JSON again, and differs from the input;
 *   - rewriting the rewritten body succeeds (masking is stable enough to
 *     be applied twice) and a body that was not rewritten leaves out empty.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "guard/guard.h"

static struct guard_policy *pol;
static struct guard_scratch scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *words[] = { "nightjar", "Initech Corp" };
	static struct guard_custom_spec custom = { .name = "codename", .words = words,
						   .nwords = 2, .action = GUARD_MASK };
	struct guard_policy_spec spec = { .name = "fuzz", .response = true, .hold_back = 64,
					  .custom = &custom, .ncustom = 1,
					  .topics_action = GUARD_FLAG };
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
	char *body = fuzz_dup(data, size);
	struct json_val root;
	struct guard_result res = { 0 };
	struct buf out = { 0 }, again = { 0 };
	bool rewritten;

	if (json_parse(body, size, &root, NULL, NULL) != 0) {
		free(body);
		return 0;
	}
	int rc = guard_rewrite_json(pol, &scratch, body, size, &out, &rewritten, &res);
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM || rc == -E2BIG, "rc %d", rc);
	if (rc == 0 && rewritten) {
		FUZZ_CHECK(json_parse(buf_head(&out), buf_used(&out), &root, NULL, NULL) == 0,
			   "rewritten body is not JSON: %.*s", (int)buf_used(&out), buf_head(&out));
		FUZZ_CHECK(res.masked != 0, "rewritten without a mask");
		memset(&res, 0, sizeof(res));
		rc = guard_rewrite_json(pol, &scratch, buf_head(&out), buf_used(&out), &again,
					&rewritten, &res);
		FUZZ_CHECK(rc == 0 || rc == -ENOMEM || rc == -E2BIG, "second rc %d", rc);
	} else if (rc == 0) {
		FUZZ_CHECK(buf_used(&out) == 0, "out written without a rewrite");
	}
	buf_free(&out);
	buf_free(&again);
	free(body);
	return 0;
}
