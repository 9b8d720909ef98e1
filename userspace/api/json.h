/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A validating JSON scanner that never allocates.
 *
 * The gateway needs a handful of fields from bodies it otherwise forwards
 * byte for byte (model, stream, usage...), so instead of building a tree it
 * validates once (RFC 8259, depth-limited) and then finds values by key,
 * returning spans into the caller's buffer.  Lookup functions assume input
 * that json_parse() accepted.
 */
#ifndef SLUICE_API_JSON_H
#define SLUICE_API_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

enum json_type {
	JSON_NONE = 0,	/* absent */
	JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL,
};

/* A value: its type and its raw text (strings include their quotes,
 * containers their brackets). */
struct json_val {
	enum json_type type;
	struct str raw;
};

#define JSON_MAX_DEPTH 64

/* Validate buf[0..len) as exactly one JSON value (surrounding whitespace
 * allowed) and return it in *root.  0, or -EINVAL with *err_off set to the
 * offset of the first bad byte and *err_msg to a short static reason. */
int json_parse(const char *buf, size_t len, struct json_val *root,
	       size_t *err_off, const char **err_msg);

/* Member `key` (compared after unescaping the member names) of an object.
 * 0, or -ENOENT (also when obj is not an object). */
int json_get(const struct json_val *obj, const char *key, struct json_val *out);

/* Walk nested objects: json_get_path(root, "usage.prompt_tokens_details.cached_tokens"). */
int json_get_path(const struct json_val *root, const char *dotted, struct json_val *out);

/* Iterate an object's members or an array's elements.
 *   struct json_iter it; json_iter_init(&it, &v);
 *   while (json_iter_next(&it, &key, &val)) ...    (key is STR_NULL for arrays;
 *   for objects it is the raw member name without quotes, still escaped) */
struct json_iter {
	const char *p, *end;
	bool object;
};
void json_iter_init(struct json_iter *it, const struct json_val *container);
bool json_iter_next(struct json_iter *it, struct str *key, struct json_val *val);
size_t json_array_len(const struct json_val *arr);

/* Number of a JSON_NUMBER that is an integer in int64 range: 0 or -EINVAL. */
int json_int64(const struct json_val *v, int64_t *out);
/* JSON_TRUE/JSON_FALSE: 0, else -EINVAL. */
int json_bool(const struct json_val *v, bool *out);
/* Unescape a JSON_STRING into dst (NUL-terminated, UTF-8 for \uXXXX
 * including surrogate pairs).  Returns the unescaped length, or -ENOSPC when
 * it does not fit (dst then holds a truncated, terminated prefix), -EINVAL
 * for a non-string. */
int json_string(const struct json_val *v, char *dst, size_t cap);
/* Compare a JSON_STRING's unescaped text with s without copying. */
bool json_string_eq(const struct json_val *v, const char *s);

/* Append s to dst as a JSON string literal with quotes and escapes.
 * UTF-8 is kept as is; a byte that is not part of valid UTF-8 becomes
 * \ufffd so the output is always valid JSON.  No NUL is added.
 * Returns bytes written, or -ENOSPC (dst untouched past cap).  */
int json_escape(char *dst, size_t cap, const char *s, size_t len);

#endif
