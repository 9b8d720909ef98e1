/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "render.h"

void table_init(struct table *t, size_t ncols, const char *const *heads, uint32_t right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
	for (size_t i = 0; i < ncols; i++)
		table_cell(t, "%s", heads[i]);
}

static int table_push(struct table *t, char *cell)
{
	if (t->ncells == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));

		if (!cells)
			return -ENOMEM;
		t->cells = cells;
		t->cap = cap;
	}
	t->cells[t->ncells++] = cell;
	return 0;
}

void table_cell(struct table *t, const char *fmt, ...)
{
	char *cell = NULL;
	va_list ap;
	int n;

	if (t->err)
		return;
	va_start(ap, fmt);
	n = vasprintf(&cell, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->err = -ENOMEM;
		return;
	}
	t->err = table_push(t, cell);
	if (t->err)
		free(cell);
}

static void table_print(const struct table *t, FILE *out)
{
	size_t width[32] = { 0 };
	size_t ncols = t->ncols < 32 ? t->ncols : 32;

	for (size_t i = 0; i < t->ncells; i++) {
		size_t len = strlen(t->cells[i]);
		if (len > width[i % t->ncols])
			width[i % t->ncols] = len;
	}
	for (size_t i = 0; i < t->ncells; i++) {
		size_t col = i % t->ncols;
		bool last = col + 1 == ncols;
		int w = (int)width[col];

		if (t->right & (1u << col))
			fprintf(out, "%*s", w, t->cells[i]);
		else
			fprintf(out, "%-*s", last ? 0 : w, t->cells[i]);
		fputs(last ? "\n" : "  ", out);
	}
}

int table_finish(struct table *t, FILE *out)
{
	int err = t->err;

	if (!err)
		table_print(t, out);
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
	return err;
}

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

static void jw_put(struct jw *w, const char *s)
{
	if (!w->err)
		w->err = buf_append_cstr(&w->b, s);
}

static void jw_escaped(struct jw *w, const char *s)
{
	size_t len = strlen(s);
	size_t cap = len * 6 + 2;	/* \u00XX per byte at worst, quotes */
	int n;

	if (w->err || (w->err = buf_reserve(&w->b, cap)))
		return;
	n = json_escape(buf_tail(&w->b), cap, s, len);
	if (n < 0)
		w->err = n;
	else
		w->b.len += (size_t)n;
}

/* The comma and the "key": that precede a value. */
static void jw_member(struct jw *w, const char *key)
{
	if (w->depth > 0 && w->has_member[w->depth - 1])
		jw_put(w, ",");
	if (w->depth > 0)
		w->has_member[w->depth - 1] = true;
	if (key) {
		jw_escaped(w, key);
		jw_put(w, ":");
	}
}

static void jw_push(struct jw *w, const char *key, const char *open)
{
	jw_member(w, key);
	jw_put(w, open);
	if (w->depth == JW_MAX_DEPTH) {
		w->err = -E2BIG;
		return;
	}
	w->has_member[w->depth++] = false;
}

static void jw_pop(struct jw *w, const char *close)
{
	if (w->depth > 0)
		w->depth--;
	jw_put(w, close);
}

void jw_open(struct jw *w, const char *key) { jw_push(w, key, "{"); }
void jw_close(struct jw *w) { jw_pop(w, "}"); }
void jw_open_array(struct jw *w, const char *key) { jw_push(w, key, "["); }
void jw_close_array(struct jw *w) { jw_pop(w, "]"); }

void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_member(w, key);
	if (s)
		jw_escaped(w, s);
	else
		jw_put(w, "null");
}

void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_member(w, key);
	if (!w->err)
		w->err = buf_append_u64(&w->b, v);
}

void jw_i64(struct jw *w, const char *key, int64_t v)
{
	jw_member(w, key);
	if (!w->err)
		w->err = buf_printf(&w->b, "%lld", (long long)v);
}

void jw_double(struct jw *w, const char *key, double v)
{
	jw_member(w, key);
	if (!w->err)
		w->err = buf_printf(&w->b, "%.6g", v);
}

void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_member(w, key);
	jw_put(w, v ? "true" : "false");
}

void jw_null(struct jw *w, const char *key)
{
	jw_member(w, key);
	jw_put(w, "null");
}

int jw_finish(struct jw *w, FILE *out)
{
	int err = w->err;

	if (!err && w->depth != 0)
		err = -EINVAL;	/* unbalanced: a bug in the caller */
	if (!err)
		fprintf(out, "%.*s\n", (int)buf_used(&w->b), buf_head(&w->b));
	buf_free(&w->b);
	memset(w, 0, sizeof(*w));
	return err;
}

void format_duration(uint64_t ns, char *out, size_t cap)
{
	uint64_t ms = ns / 1000000, s = ms / 1000;

	if (s < 1)
		snprintf(out, cap, "%llums", (unsigned long long)ms);
	else if (s < 60)
		snprintf(out, cap, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(out, cap, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(out, cap, "%lluh%02llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else
		snprintf(out, cap, "%llud%02lluh", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
}
