/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one edit the gateway makes to a request body: a streaming request
 * whose client did not ask for usage gets stream_options.include_usage
 * set (api_stream_usage_edit, api/openai.h).
 *
 * Properties, for every body the request reader accepts:
 * - the edit lies inside the body and yields valid JSON (re-validated
 *   with the scanner), read back by the request reader as the same model,
 *   still streaming, now asking for usage, with nothing left to edit;
 * - every other root member keeps its name and bytes, in order;
 * - no edit is asked for exactly when the request does not stream or
 *   already asks for usage.
 */
#include <errno.h>

#include "api/json.h"
#include "api/openai.h"
#include "fuzz.h"

/* Is this member name "stream_options" (after unescaping)? */
static bool is_stream_options(struct str key)
{
	struct json_val k = { JSON_STRING, { key.p - 1, key.len + 2 } };
	return json_string_eq(&k, "stream_options");
}

/* The root members other than stream_options must be the same, byte for
 * byte and in the same order, before and after the edit. */
static void check_others_kept(const struct json_val *before, const struct json_val *after)
{
	struct json_iter a, b;
	struct json_val va, vb;
	struct str ka, kb;

	json_iter_init(&a, before);
	json_iter_init(&b, after);
	for (;;) {
		bool more_a, more_b;

		while ((more_a = json_iter_next(&a, &ka, &va)) && is_stream_options(ka))
			;
		while ((more_b = json_iter_next(&b, &kb, &vb)) && is_stream_options(kb))
			;
		FUZZ_CHECK(more_a == more_b, "the edit added or dropped a member");
		if (!more_a)
			return;
		FUZZ_CHECK(ka.len == kb.len && memcmp(ka.p, kb.p, ka.len) == 0 &&
			   va.raw.len == vb.raw.len && memcmp(va.raw.p, vb.raw.p, va.raw.len) == 0,
			   "member %.*s changed", (int)ka.len, ka.p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct api_request req, again;
	struct api_body_edit edit;
	char why[256];

	if (api_parse_request(body, size, &req, why, sizeof(why)))
		return 0;
	int rc = api_stream_usage_edit(&req, &edit);
	if (rc == 1) {
		FUZZ_CHECK(!req.stream || req.client_wants_usage, "an edit was needed");
		return 0;
	}
	FUZZ_CHECK(rc == 0, "no edit for a request the reader accepted: %d", rc);
	FUZZ_CHECK(req.stream && !req.client_wants_usage, "an edit that was not needed");
	FUZZ_CHECK(edit.at <= size && edit.del <= size - edit.at, "edit outside the body");
	FUZZ_CHECK(edit.insert.len > 0 && edit.insert.p, "empty insert");

	/* The body as the upstream gets it. */
	size_t len = size - edit.del + edit.insert.len;
	char *out = malloc(len);
	memcpy(out, body, edit.at);
	memcpy(out + edit.at, edit.insert.p, edit.insert.len);
	memcpy(out + edit.at + edit.insert.len, body + edit.at + edit.del, size - edit.at - edit.del);

	struct json_val root;
	size_t off = 0;
	const char *msg = "";
	FUZZ_CHECK(json_parse(out, len, &root, &off, &msg) == 0,
		   "the edit made invalid JSON (%s at %zu): %.*s", msg, off, (int)len, out);
	FUZZ_CHECK(api_parse_request(out, len, &again, why, sizeof(why)) == 0,
		   "the edited body is refused: %s", why);
	FUZZ_CHECK(again.stream && again.client_wants_usage, "the edited body does not ask for usage");
	FUZZ_CHECK(strcmp(again.model_buf, req.model_buf) == 0, "the model changed");
	FUZZ_CHECK(api_stream_usage_edit(&again, &edit) == 1, "a second edit is asked for");
	check_others_kept(&req.root, &again.root);
	free(out);
	return 0;
}
