/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output: aligned tables for people, JSON for scripts.  Both collect errors
 * (out of memory) as a sticky value reported once at the end, so commands
 * read as a straight list of cells or members.
 */
#ifndef SLUICECTL_RENDER_H
#define SLUICECTL_RENDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"

/* A table of text cells, filled row by row; columns are padded to their
 * widest cell.  Columns whose bit is set in `right` are right-aligned. */
struct table {
	size_t ncols;
	uint32_t right;
	char **cells;		/* row-major, the header first */
	size_t ncells, cap;
	int err;
};

void table_init(struct table *t, size_t ncols, const char *const *heads, uint32_t right);
/* Append the next cell (rows wrap every ncols cells). */
void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print and free; 0 or the first error. */
int table_finish(struct table *t, FILE *out);

#define JW_MAX_DEPTH 8

/* A JSON writer: keys are ignored inside arrays, pass NULL there. */
struct jw {
	struct buf b;
	int depth;
	bool has_member[JW_MAX_DEPTH];
	int err;
};

void jw_init(struct jw *w);
void jw_open(struct jw *w, const char *key);		/* { */
void jw_close(struct jw *w);				/* } */
void jw_open_array(struct jw *w, const char *key);	/* [ */
void jw_close_array(struct jw *w);			/* ] */
void jw_str(struct jw *w, const char *key, const char *s);	/* NULL: null */
void jw_u64(struct jw *w, const char *key, uint64_t v);
void jw_i64(struct jw *w, const char *key, int64_t v);
void jw_double(struct jw *w, const char *key, double v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_null(struct jw *w, const char *key);
/* Print with a newline and free; 0 or the first error. */
int jw_finish(struct jw *w, FILE *out);

/* "850ms", "42s", "5m03s", "2h10m", "3d04h": a short age or duration. */
void format_duration(uint64_t ns, char *out, size_t cap);

#endif
