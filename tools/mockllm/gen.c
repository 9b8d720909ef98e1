/* SPDX-License-Identifier: Apache-2.0 */
#include "gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"

/* Fixed vocabulary: plain lowercase words, so they need no JSON escaping. */
static const char *const vocab[64] = {
	"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
	"river", "stone", "cloud", "light", "paper", "garden", "silver", "window",
	"mountain", "ocean", "forest", "signal", "packet", "router", "kernel", "socket",
	"buffer", "thread", "queue", "token", "model", "stream", "gateway", "sluice",
	"amber", "copper", "marble", "velvet", "harbor", "meadow", "canyon", "glacier",
	"lantern", "compass", "anchor", "bridge", "tunnel", "valley", "summit", "island",
	"orbit", "comet", "planet", "galaxy", "photon", "quartz", "prism", "spiral",
	"echo", "rhythm", "melody", "harmony", "cipher", "vector", "matrix", "tensor",
};

/*
 * Builders below OR together the results of their appends instead of
 * checking each one: the only failure is -ENOMEM from the buffer, and a
 * body with any failed piece is thrown away as a whole.
 */

/* 1 for the bytes isspace() accepts in the C locale. */
static const uint8_t space_table[256] = {
	[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, ['\f'] = 1, ['\v'] = 1,
};

/*
 * The prompt is hashed on every request.  FNV-1a is one dependent multiply
 * per byte, so counting words in the same loop, without branches, comes
 * almost for free.
 */
void gen_text_add(struct gen_text *t, const char *p, size_t n)
{
	uint64_t h = t->hash;
	uint32_t words = t->words;
	uint32_t after_space = !t->in_word;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		uint32_t space = space_table[ch];
		h = (h ^ ch) * 0x100000001b3ULL;
		words += after_space & !space;
		after_space = space;
	}
	t->hash = h;
	t->words = words;
	t->in_word = !after_space;
}

void gen_text_add_tokens(struct gen_text *t, const char *json, size_t n, uint32_t count)
{
	uint32_t words = t->words;

	gen_text_add(t, json, n);
	t->words = words + count;
	t->in_word = false;
}

uint64_t gen_splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const char *token_word(const struct gen_completion *g, uint32_t i)
{
	return vocab[gen_splitmix64(g->seed + i) % 64];
}

/* Token i as it appears in the text: every token but the last is followed
 * by a space, so the stream deltas concatenate to the non-stream content. */
static int append_token(const struct gen_completion *g, uint32_t i, struct buf *dst)
{
	const char *word = token_word(g, i);
	int err = buf_append_cstr(dst, word);

	if (!err && i + 1 < g->completion_tokens)
		err = fmt_lit(dst, " ");
	return err;
}

static int append_text(const struct gen_completion *g, struct buf *dst)
{
	for (uint32_t i = 0; i < g->completion_tokens; i++) {
		int err = append_token(g, i, dst);
		if (err)
			return err;
	}
	return 0;
}

static int append_usage(const struct gen_completion *g, struct buf *dst)
{
	uint64_t total = (uint64_t)g->prompt_tokens + g->completion_tokens;
	int err = fmt_lit(dst, "\"usage\":{\"prompt_tokens\":");

	err |= buf_append_u64(dst, g->prompt_tokens);
	err |= fmt_lit(dst, ",\"completion_tokens\":");
	err |= buf_append_u64(dst, g->completion_tokens);
	err |= fmt_lit(dst, ",\"total_tokens\":");
	err |= buf_append_u64(dst, total);
	err |= fmt_lit(dst, ",\"prompt_tokens_details\":{\"cached_tokens\":");
	err |= buf_append_u64(dst, g->cached_tokens);
	err |= fmt_lit(dst, "},\"completion_tokens_details\":{\"reasoning_tokens\":");
	err |= buf_append_u64(dst, g->reasoning_tokens);
	err |= fmt_lit(dst, "}}");
	return err ? -ENOMEM : 0;
}

/* {"id":"...","object":"<object>","created":...,"model":..., */
static int append_head(const struct gen_completion *g, const char *object, struct buf *dst)
{
	int err = fmt_lit(dst, "{\"id\":\"");

	err |= buf_append_cstr(dst, g->kind == GEN_CHAT ? "chatcmpl-" : "cmpl-");
	err |= fmt_hex16(dst, g->seed);
	err |= fmt_lit(dst, "\",\"object\":\"");
	err |= buf_append_cstr(dst, object);
	err |= fmt_lit(dst, "\",\"created\":" GEN_CREATED ",\"model\":");
	err |= buf_append(dst, g->model, g->model_len);
	err |= fmt_lit(dst, ",");
	return err ? -ENOMEM : 0;
}

static int append_finish_reason(const struct gen_completion *g, struct buf *dst)
{
	int err = fmt_lit(dst, "\"finish_reason\":\"");

	err |= buf_append_cstr(dst, g->truncated ? "length" : "stop");
	err |= fmt_lit(dst, "\"");
	return err ? -ENOMEM : 0;
}

static int chat_body(const struct gen_completion *g, struct buf *dst)
{
	int err = append_head(g, "chat.completion", dst);

	err |= fmt_lit(dst, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
	err |= append_text(g, dst);
	err |= fmt_lit(dst, "\",\"refusal\":null},\"logprobs\":null,");
	err |= append_finish_reason(g, dst);
	err |= fmt_lit(dst, "}],");
	err |= append_usage(g, dst);
	err |= fmt_lit(dst, ",\"system_fingerprint\":\"fp_mock\"}");
	return err ? -ENOMEM : 0;
}

static int text_body(const struct gen_completion *g, struct buf *dst)
{
	int err = append_head(g, "text_completion", dst);

	err |= fmt_lit(dst, "\"system_fingerprint\":\"fp_mock\",\"choices\":[{\"text\":\"");
	err |= append_text(g, dst);
	err |= fmt_lit(dst, "\",\"index\":0,\"logprobs\":null,");
	err |= append_finish_reason(g, dst);
	err |= fmt_lit(dst, "}],");
	err |= append_usage(g, dst);
	err |= fmt_lit(dst, "}");
	return err ? -ENOMEM : 0;
}

int gen_completion_body(const struct gen_completion *g, struct buf *dst)
{
	return g->kind == GEN_CHAT ? chat_body(g, dst) : text_body(g, dst);
}

uint32_t gen_content_events(const struct gen_completion *g)
{
	return g->completion_tokens + (g->kind == GEN_CHAT);
}

uint32_t gen_event_token(const struct gen_completion *g, uint32_t event)
{
	if (g->kind == GEN_CHAT)
		return event ? event - 1 : 0;
	return event;
}

static int chunk_open(const struct gen_completion *g, struct buf *dst)
{
	const char *object = g->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion";
	int err = append_head(g, object, dst);

	err |= fmt_lit(dst, "\"system_fingerprint\":\"fp_mock\",\"choices\":[");
	return err ? -ENOMEM : 0;
}

/* With include_usage every chunk says "usage":null until the last one. */
static int chunk_close(const struct gen_completion *g, struct buf *dst)
{
	if (g->include_usage)
		return fmt_lit(dst, "],\"usage\":null}");
	return fmt_lit(dst, "]}");
}

static int chat_event(const struct gen_completion *g, uint32_t event, struct buf *dst)
{
	int err = fmt_lit(dst, "{\"index\":0,\"delta\":{");

	if (event == 0) {
		err |= fmt_lit(dst, "\"role\":\"assistant\",\"content\":\"\"");
	} else {
		err |= fmt_lit(dst, "\"content\":\"");
		err |= append_token(g, event - 1, dst);
		err |= fmt_lit(dst, "\"");
	}
	err |= fmt_lit(dst, "},\"logprobs\":null,\"finish_reason\":null}");
	return err ? -ENOMEM : 0;
}

static int text_event(const struct gen_completion *g, uint32_t event, struct buf *dst)
{
	int err = fmt_lit(dst, "{\"text\":\"");

	err |= append_token(g, event, dst);
	err |= fmt_lit(dst, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}");
	return err ? -ENOMEM : 0;
}

int gen_chunk_event(const struct gen_completion *g, uint32_t event, struct buf *dst)
{
	int err = chunk_open(g, dst);

	if (g->kind == GEN_CHAT)
		err |= chat_event(g, event, dst);
	else
		err |= text_event(g, event, dst);
	err |= chunk_close(g, dst);
	return err ? -ENOMEM : 0;
}

int gen_chunk_finish(const struct gen_completion *g, struct buf *dst)
{
	int err = chunk_open(g, dst);

	if (g->kind == GEN_CHAT)
		err |= fmt_lit(dst, "{\"index\":0,\"delta\":{},\"logprobs\":null,");
	else
		err |= fmt_lit(dst, "{\"text\":\"\",\"index\":0,\"logprobs\":null,");
	err |= append_finish_reason(g, dst);
	err |= fmt_lit(dst, "}");
	err |= chunk_close(g, dst);
	return err ? -ENOMEM : 0;
}

int gen_chunk_usage(const struct gen_completion *g, struct buf *dst)
{
	int err = chunk_open(g, dst);

	err |= fmt_lit(dst, "],");
	err |= append_usage(g, dst);
	err |= fmt_lit(dst, "}");
	return err ? -ENOMEM : 0;
}

/* Component j before normalisation: uniform in [-1, 1). */
static double embedding_raw(uint64_t seed, uint32_t j)
{
	return (double)(gen_splitmix64(seed + j) >> 11) * 0x1.0p-52 - 1.0;
}

static double embedding_norm(uint64_t seed, uint32_t dims)
{
	double sum = 0;

	for (uint32_t j = 0; j < dims; j++) {
		double x = embedding_raw(seed, j);
		sum += x * x;
	}
	return sum > 0 ? sqrt(sum) : 1.0;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_quantum(const unsigned char *in, size_t n, char *out)
{
	uint32_t v = (uint32_t)in[0] << 16 | (n > 1 ? (uint32_t)in[1] << 8 : 0) |
		     (n > 2 ? in[2] : 0);

	out[0] = b64_alphabet[v >> 18 & 63];
	out[1] = b64_alphabet[v >> 12 & 63];
	out[2] = n > 1 ? b64_alphabet[v >> 6 & 63] : '=';
	out[3] = n > 2 ? b64_alphabet[v & 63] : '=';
}

/* Components are produced one float at a time; three floats make twelve
 * bytes, a whole number of base64 quanta, so no state crosses a batch. */
static int embedding_base64(uint64_t seed, uint32_t dims, double norm, struct buf *dst)
{
	int err = buf_reserve(dst, (size_t)dims * 16 / 3 + 8);

	if (err)
		return err;
	char *out = buf_tail(dst);
	*out++ = '"';
	for (uint32_t j = 0; j < dims; j += 3) {
		unsigned char bytes[12];
		size_t n = 0;
		for (uint32_t k = j; k < j + 3 && k < dims; k++) {
			float f = (float)(embedding_raw(seed, k) / norm);
			uint32_t bits;
			memcpy(&bits, &f, sizeof(bits));
			for (int b = 0; b < 4; b++)
				bytes[n++] = (unsigned char)(bits >> (8 * b));
		}
		for (size_t q = 0; q < n; q += 3, out += 4)
			b64_quantum(bytes + q, n - q, out);
	}
	*out++ = '"';
	dst->len = (size_t)(out - dst->data);
	return 0;
}

static int embedding_floats(uint64_t seed, uint32_t dims, double norm, struct buf *dst)
{
	int err = fmt_lit(dst, "[");

	/* %.9g is the shortest format that round-trips every float32. */
	for (uint32_t j = 0; j < dims && !err; j++) {
		float f = (float)(embedding_raw(seed, j) / norm);
		err = buf_printf(dst, "%s%.9g", j ? "," : "", (double)f);
	}
	err |= fmt_lit(dst, "]");
	return err ? -ENOMEM : 0;
}

int gen_embedding(uint64_t seed, uint32_t dims, bool base64, struct buf *dst)
{
	double norm = embedding_norm(seed, dims);

	if (base64)
		return embedding_base64(seed, dims, norm, dst);
	return embedding_floats(seed, dims, norm, dst);
}
