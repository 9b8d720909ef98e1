/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Masking a request body in place.  Every string value of the JSON is
 * text a model may read (message content in string or array form, tool
 * call arguments, prompt, input, instructions, even user), so all of them
 * are scanned except the few that are structure: model, role, type, ids.
 * The strings are unescaped ("\u0040" is an '@') one after the other into
 * one text, a newline between two, and scanned in one pass (a scan per
 * string cost a few hs_scan calls each); a string some mask span reaches
 * into is written back re-escaped, the bytes between such strings copied
 * as they were, so the rest of the body stays byte-identical.
 */
#include "guard/guard_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"

struct rewrite {
	const struct guard_policy *p;
	struct guard_scratch *s;
	const char *body;
	size_t copied;		/* body bytes already in out */
	struct buf *out;
	bool *rewritten;
	struct guard_result *res;
};

/* Member names whose values are structure, not text.  Compared on the
 * raw (escaped) name: an escaped "mod\u0065l" is scanned, which is safe. */
static bool structural_key(struct str k)
{
	static const char *const keys[] = {
		"model", "role", "type", "id", "tool_call_id", "object", "encoding_format",
		"service_tier", "reasoning_effort",
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (str_eq_cstr(k, keys[i]))
			return true;
	return false;
}

/* Append the string's text (unescaped) and a '\n' to s->text, and note
 * where it came from.  A newline keeps entities of two strings apart
 * (no pattern but a phrase's \s crosses one). */
static int collect_string(struct rewrite *rw, const struct json_val *v)
{
	struct guard_scratch *s = rw->s;
	struct str in = { v->raw.p + 1, v->raw.len - 2 };
	size_t at = buf_used(&s->text);
	int n;

	if (buf_reserve(&s->text, v->raw.len + 1))
		return -ENOMEM;
	if (!memchr(in.p, '\\', in.len)) {
		memcpy(buf_tail(&s->text), in.p, in.len);
		n = (int)in.len;
	} else if ((n = json_string(v, buf_tail(&s->text), v->raw.len + 1)) < 0) {
		return -EINVAL;
	}
	s->text.len += (size_t)n;
	s->text.data[s->text.len++] = '\n';
	if (s->nseg == s->seg_cap) {
		size_t cap = s->seg_cap ? 2 * s->seg_cap : 64;
		struct guard_seg *g = realloc(s->seg, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		s->seg = g;
		s->seg_cap = cap;
	}
	s->seg[s->nseg++] = (struct guard_seg){ .raw = v->raw.p, .raw_len = v->raw.len,
						.at = at, .len = (size_t)n };
	return 0;
}

static int collect_value(struct rewrite *rw, const struct json_val *v)
{
	struct json_iter it;
	struct json_val kid;
	struct str key;

	if (v->type == JSON_STRING)
		return collect_string(rw, v);
	if (v->type != JSON_OBJECT && v->type != JSON_ARRAY)
		return 0;
	/* Depth is bounded by json_parse (JSON_MAX_DEPTH), so is this recursion. */
	json_iter_init(&it, v);
	while (json_iter_next(&it, &key, &kid)) {
		if (key.p && kid.type == JSON_STRING && structural_key(key))
			continue;
		int err = collect_value(rw, &kid);
		if (err)
			return err;
	}
	return 0;
}

/* Segment g's text with the mask spans that reach into it (from *mi on)
 * replaced, into s->tmp; a span over two strings is cut at their border. */
static int mask_segment(struct rewrite *rw, const struct guard_seg *g, size_t *mi)
{
	struct guard_scratch *s = rw->s;
	const char *text = s->text.data;
	size_t pos = g->at, end = g->at + g->len, i = *mi;

	buf_reset(&s->tmp);
	for (; i < s->nmatch && s->match[i].from < end; i++) {
		const struct guard_match *m = &s->match[i];
		size_t from = m->from > pos ? m->from : pos, to = m->to < end ? m->to : end;
		if (buf_append(&s->tmp, text + pos, from - pos) ||
		    buf_append(&s->tmp, rw->p->placeholder[m->entity],
			       rw->p->placeholder_len[m->entity]))
			return -ENOMEM;
		pos = to;
		if (m->to > end)
			break;	/* it goes on into the next string */
	}
	*mi = i;
	return buf_append(&s->tmp, text + pos, end - pos) ? -ENOMEM : 0;
}

/* Replace segment g's string in the output with s->tmp, re-escaped. */
static int emit_masked(struct rewrite *rw, const struct guard_seg *g)
{
	struct guard_scratch *s = rw->s;
	size_t at = (size_t)(g->raw - rw->body);
	/* json_escape writes at most 6 bytes per input byte, plus quotes. */
	size_t need = 6 * buf_used(&s->tmp) + 2;

	if (buf_append(rw->out, rw->body + rw->copied, at - rw->copied) ||
	    buf_reserve(rw->out, need))
		return -ENOMEM;
	int n = json_escape(buf_tail(rw->out), need, buf_head(&s->tmp), buf_used(&s->tmp));
	if (n < 0)
		return -ENOMEM;
	rw->out->len += (size_t)n;
	rw->copied = at + g->raw_len;
	*rw->rewritten = true;
	return 0;
}

/* The strings some mask span reaches into, rewritten in body order. */
static int emit_all(struct rewrite *rw)
{
	struct guard_scratch *s = rw->s;
	size_t mi = 0;

	for (size_t k = 0; k < s->nseg && mi < s->nmatch; k++) {
		const struct guard_seg *g = &s->seg[k];
		while (mi < s->nmatch && s->match[mi].to <= g->at)
			mi++;
		if (mi == s->nmatch || s->match[mi].from >= g->at + g->len)
			continue;
		int err = mask_segment(rw, g, &mi);
		if (!err)
			err = emit_masked(rw, g);
		if (err)
			return err;
	}
	return 0;
}

int guard_rewrite_json(const struct guard_policy *p, struct guard_scratch *s,
		       const char *body, size_t len, struct buf *out, bool *rewritten,
		       struct guard_result *res)
{
	struct rewrite rw = { .p = p, .s = s, .body = body, .out = out,
			      .rewritten = rewritten, .res = res };
	struct json_val root;

	*rewritten = false;
	if (json_parse(body, len, &root, NULL, NULL))
		return -EINVAL;
	/* One scan over the text of every string, then the rewrite. */
	buf_reset(&s->text);
	s->nseg = 0;
	int err = collect_value(&rw, &root);
	if (!err)
		err = guard_scan(p, s, s->text.data ? buf_head(&s->text) : "", buf_used(&s->text),
				 res);
	if (!err)
		err = emit_all(&rw);
	if (err)
		return err;
	guard_finish_topics(p, res);
	if (*rewritten && buf_append(out, body + rw.copied, len - rw.copied))
		return -ENOMEM;
	return 0;
}
