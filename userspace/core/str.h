/* SPDX-License-Identifier: Apache-2.0 */
/* A borrowed byte span: never owns its memory, never NUL-terminated. */
#ifndef SLUICE_CORE_STR_H
#define SLUICE_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct str {
	const char *p;
	size_t len;
};

#define STR_LIT(s) ((struct str){ (s), sizeof(s) - 1 })
#define STR_NULL ((struct str){ NULL, 0 })

static inline struct str str_from(const char *s)
{
	return (struct str){ s, s ? strlen(s) : 0 };
}

static inline bool str_eq(struct str a, struct str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool str_eq_cstr(struct str a, const char *b)
{
	return str_eq(a, str_from(b));
}

static inline bool str_case_eq_cstr(struct str a, const char *b)
{
	size_t n = strlen(b);
	return a.len == n && strncasecmp(a.p, b, n) == 0;
}

static inline bool str_has_prefix(struct str a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

/* Value of a hexadecimal digit, or -1. */
static inline int hex_digit_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
