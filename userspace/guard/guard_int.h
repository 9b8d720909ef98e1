/* SPDX-License-Identifier: Apache-2.0 */
/* Guard internals shared by policy.c, detect.c and scan.c. */
#ifndef SLUICE_GUARD_GUARD_INT_H
#define SLUICE_GUARD_GUARD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard/guard.h"

/* Checks a Hyperscan candidate text[from, to) against the rest of the
 * text (what comes before and after it): true when it is a real entity. */
typedef bool (*guard_validate_fn)(const char *text, size_t len, size_t from, size_t to);

/* One built-in pattern of a detector. */
struct guard_builtin_pattern {
	uint16_t entity;
	const char *regex;
	unsigned flags;			/* HS_FLAG_* besides SOM_LEFTMOST */
	guard_validate_fn validate;	/* NULL: every candidate counts */
};

extern const struct guard_builtin_pattern guard_builtin_patterns[];
extern const size_t guard_builtin_npatterns;

/* Validators, exposed for the unit tests. */
bool guard_luhn_ok(const char *s, size_t len);	/* digits, spaces and dashes */
bool guard_iban_ok(const char *s, size_t len);	/* country length + mod 97 */
bool guard_ssn_ok(const char *s, size_t len);	/* AAA-GG-SSSS */

/* What a Hyperscan pattern id means in a compiled policy. */
struct guard_pat {
	uint16_t entity;
	uint8_t action;
	bool allow;			/* a topics.allow keyword: no hit, sets allow_seen */
	guard_validate_fn validate;
};

/* guard_scan(), but mask spans starting before skip_before are left out
 * of the result: the window's context bytes, already released. */
int guard_scan_after(const struct guard_policy *p, struct guard_scratch *s, const char *text,
		     size_t len, size_t skip_before, struct guard_result *res);

struct guard_policy {
	char *name;
	void *db;			/* hs_database_t, NULL when nothing to scan */
	struct guard_pat *pats;
	size_t npats;
	enum guard_action action[GUARD_ENTITY_MAX];
	char *names[GUARD_ENTITY_MAX];	/* custom names; built-ins use the table */
	char *placeholder[GUARD_ENTITY_MAX];	/* "[EMAIL]", "[PROJECT_CODENAME]" */
	size_t placeholder_len[GUARD_ENTITY_MAX];
	bool has_allow;
	bool response;
	unsigned hold_back;
};

#endif
