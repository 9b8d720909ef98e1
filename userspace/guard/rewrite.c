/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Masking a request body in place.  Every string value of the JSON is
 * text a model may read (message content in string or array form, tool
 * call arguments, prompt, input, instructions, even user), so all of them
 * are scanned except the few that are structure: model, role, type, ids.
 * A string is scanned unescaped ("\u0040" is an '@'), and a string with
 * masked spans is written back re-escaped; the bytes between such strings
 * are copied as they were, so the rest of the body stays byte-identical.
 */
#include "guard/guard_int.h"

#include <errno.h>
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

/* The string's text: the raw bytes when it holds no escape, else its
 * unescaped copy in s->text. */
static int string_text(struct guard_scratch *s, const struct json_val *v, struct str *out)
{
	struct str in = { v->raw.p + 1, v->raw.len - 2 };

	if (!memchr(in.p, '\\', in.len)) {
		*out = in;
		return 0;
	}
	buf_reset(&s->text);
	if (buf_reserve(&s->text, v->raw.len + 1))
		return -ENOMEM;
	int n = json_string(v, buf_tail(&s->text), v->raw.len + 1);
	if (n < 0)
		return -EINVAL;
	*out = (struct str){ buf_tail(&s->text), (size_t)n };
	return 0;
}

/* Replace the string v in the output with its masked, re-escaped text. */
static int emit_masked(struct rewrite *rw, const struct json_val *v, struct str text)
{
	struct guard_scratch *s = rw->s;
	size_t at = (size_t)(v->raw.p - rw->body);

	buf_reset(&s->tmp);
	if (guard_mask_append(rw->p, s, text.p, 0, text.len, &s->tmp))
		return -ENOMEM;
	/* json_escape writes at most 6 bytes per input byte, plus quotes. */
	size_t need = 6 * buf_used(&s->tmp) + 2;
	if (buf_append(rw->out, rw->body + rw->copied, at - rw->copied) ||
	    buf_reserve(rw->out, need))
		return -ENOMEM;
	int n = json_escape(buf_tail(rw->out), need, buf_head(&s->tmp), buf_used(&s->tmp));
	if (n < 0)
		return -ENOMEM;
	rw->out->len += (size_t)n;
	rw->copied = at + v->raw.len;
	*rw->rewritten = true;
	return 0;
}

static int rewrite_string(struct rewrite *rw, const struct json_val *v)
{
	struct str text;
	int err = string_text(rw->s, v, &text);

	if (!err)
		err = guard_scan(rw->p, rw->s, text.p, text.len, rw->res);
	if (err || rw->s->nmatch == 0)
		return err;
	return emit_masked(rw, v, text);
}

static int rewrite_value(struct rewrite *rw, const struct json_val *v)
{
	struct json_iter it;
	struct json_val kid;
	struct str key;

	if (v->type == JSON_STRING)
		return rewrite_string(rw, v);
	if (v->type != JSON_OBJECT && v->type != JSON_ARRAY)
		return 0;
	/* Depth is bounded by json_parse (JSON_MAX_DEPTH), so is this recursion. */
	json_iter_init(&it, v);
	while (json_iter_next(&it, &key, &kid)) {
		if (key.p && kid.type == JSON_STRING && structural_key(key))
			continue;
		int err = rewrite_value(rw, &kid);
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
	int err = rewrite_value(&rw, &root);
	if (err)
		return err;
	guard_finish_topics(p, res);
	if (*rewritten && buf_append(out, body + rw.copied, len - rw.copied))
		return -ENOMEM;
	return 0;
}
