/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deterministic model output.  Everything a response contains is a pure
 * function of the request: the prompt hash seeds the words, the id and the
 * embedding vectors, so the same request always gets the same bytes.
 */
#ifndef MOCKLLM_GEN_H
#define MOCKLLM_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define GEN_FNV_OFFSET 0xcbf29ce484222325ULL
#define GEN_MODEL_MAX 512	/* model as a JSON literal, quotes included */
#define GEN_CREATED "1700000000"	/* fixed, so responses are reproducible */

enum gen_kind {
	GEN_CHAT,	/* /v1/chat/completions */
	GEN_TEXT,	/* /v1/completions */
};

/* One completion to generate, copied out of the request. */
struct gen_completion {
	enum gen_kind kind;
	uint64_t seed;			/* fnv1a64 of the prompt text */
	uint32_t prompt_tokens;
	uint32_t completion_tokens;
	uint32_t cached_tokens;
	uint32_t reasoning_tokens;
	bool truncated;			/* max_tokens cut it: finish_reason "length" */
	bool include_usage;		/* stream_options.include_usage */
	size_t model_len;
	char model[GEN_MODEL_MAX];	/* JSON string literal as the client sent it */
};

/*
 * A text fed in pieces: its fnv1a64 hash and its whitespace-separated word
 * count, as if the pieces were one string (a word may span two pieces).
 */
struct gen_text {
	uint64_t hash;
	uint32_t words;
	bool in_word;
};

static inline void gen_text_init(struct gen_text *t)
{
	*t = (struct gen_text){ .hash = GEN_FNV_OFFSET };
}

void gen_text_add(struct gen_text *t, const char *p, size_t n);
/* A token array: hashed as its JSON text, counted as `count` tokens. */
void gen_text_add_tokens(struct gen_text *t, const char *json, size_t n, uint32_t count);

uint64_t gen_splitmix64(uint64_t x);

/* Non-stream response body: chat.completion or text_completion. */
int gen_completion_body(const struct gen_completion *g, struct buf *dst);

/*
 * Stream events, each the JSON of one chunk (no "data: " framing).
 * Events are numbered: for chat, event 0 is the role delta and event k the
 * token k - 1; for text, event k is token k.  Then come the finish chunk
 * and, with include_usage, the usage-only chunk.
 */
uint32_t gen_content_events(const struct gen_completion *g);
/* Index of the token an event carries (the role delta rides with token 0). */
uint32_t gen_event_token(const struct gen_completion *g, uint32_t event);
int gen_chunk_event(const struct gen_completion *g, uint32_t event, struct buf *dst);
int gen_chunk_finish(const struct gen_completion *g, struct buf *dst);
int gen_chunk_usage(const struct gen_completion *g, struct buf *dst);

/* Append one embedding vector of `dims` floats seeded by `seed`, as a JSON
 * array of numbers or, with base64, a JSON string of little-endian float32. */
int gen_embedding(uint64_t seed, uint32_t dims, bool base64, struct buf *dst);

#endif
