/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the incremental chunked-body decoder (http/http1.h),
 * under a size limit chosen from the input.
 *
 * Beyond not crashing (ASan, UBSan), it checks:
 *   - decoding the whole input in place consumes no more than it was
 *     given, decodes no more than it consumed, and never more than the
 *     limit;
 *   - the same input arriving in pieces, decoded as the gateway does (the
 *     undecoded rest kept, each call on a fresh copy of exactly those
 *     bytes, the decoder's state carried), gives the same payload, the
 *     same result (complete, more needed, or the same error) and consumes
 *     the same bytes: the decoder keeps its place exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

struct result {
	int rc;
	size_t consumed;
	size_t payload_len;
	char *payload;
};

static uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h;
}

static void decode(const char *data, size_t size, size_t piece, uint64_t max_total,
		   struct result *r)
{
	struct http_chunked c;
	size_t fed = 0;		/* data[0..fed) given so far */

	http_chunked_init(&c);
	r->rc = 0;
	r->consumed = 0;
	r->payload_len = 0;
	r->payload = malloc(size ? size : 1);
	CHECK(r->payload);
	while (fed < size && r->rc == 0) {
		fed = size - fed < piece ? size : fed + piece;
		size_t raw = fed - r->consumed;
		char *buf = malloc(raw ? raw : 1);
		CHECK(buf);
		memcpy(buf, data + r->consumed, raw);
		size_t len = raw, consumed = 0;
		r->rc = http_chunked_decode(&c, buf, &len, &consumed, max_total);
		CHECK(consumed <= raw && len <= consumed);
		memcpy(r->payload + r->payload_len, buf, len);
		r->payload_len += len;
		r->consumed += consumed;
		free(buf);
		CHECK(c.total == r->payload_len);
		CHECK(r->payload_len <= max_total);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, part;
	uint64_t h = hash(data, size);
	uint64_t max_total = (h & 1) ? UINT64_MAX : (h >> 1) % 4096;

	decode((const char *)data, size, size ? size : 1, max_total, &whole);
	static const size_t pieces[] = { 1, 2, 5, 17, 300 };
	for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++) {
		if (pieces[i] >= size)
			break;
		decode((const char *)data, size, pieces[i], max_total, &part);
		CHECK(part.rc == whole.rc && part.consumed == whole.consumed &&
		      part.payload_len == whole.payload_len);
		CHECK(memcmp(part.payload, whole.payload, whole.payload_len) == 0);
		free(part.payload);
	}
	free(whole.payload);
	return 0;
}
