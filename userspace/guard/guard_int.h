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

/* Where the match ending at `to` starts, found without Hyperscan's
 * start-of-match (which is slow for a pattern led by a wide class). */
typedef size_t (*guard_start_fn)(const char *text, size_t to);

/* One built-in pattern of a detector. */
struct guard_builtin_pattern {
	uint16_t entity;
	const char *regex;
	unsigned flags;			/* HS_FLAG_* besides SOM_LEFTMOST */
	guard_validate_fn validate;	/* NULL: every candidate counts */
	guard_start_fn start;		/* NULL: a leftmost-start scan */
};

extern const struct guard_builtin_pattern guard_builtin_patterns[];
extern const size_t guard_builtin_npatterns;

/* Validators, exposed for the unit tests. */
bool guard_luhn_ok(const char *s, size_t len);	/* digits, spaces and dashes */
bool guard_iban_ok(const char *s, size_t len);	/* country length + mod 97 */
bool guard_ssn_ok(const char *s, size_t len);	/* AAA-GG-SSSS */

/* Databases a policy's patterns are split into (policy.c, group_of). */
enum guard_group {
	GUARD_GROUP_LITERAL,	/* e-mail, secrets */
	GUARD_GROUP_DIGITS,	/* phones, cards, SSNs, IPv4 */
	GUARD_GROUP_IBAN,
	GUARD_GROUP_HEX,	/* IPv6 */
	GUARD_GROUP_PHRASES,	/* prompt injection */
	GUARD_GROUP_WORDS,	/* custom rules, topics */
	GUARD_GROUPS
};

/* What a Hyperscan pattern id means in a compiled policy. */
struct guard_pat {
	uint16_t entity;
	uint8_t action;
	bool allow;			/* a topics.allow keyword: no hit, sets allow_seen */
	guard_validate_fn validate;
	void *som_db;			/* this pattern alone, with leftmost start */
	guard_start_fn start;		/* or this, instead of som_db */
	uint32_t span;			/* longest match looked back for */
};

/* guard_scan(), but mask spans starting before skip_before are left out
 * of the result: the window's context bytes, already released. */
int guard_scan_after(const struct guard_policy *p, struct guard_scratch *s, const char *text,
		     size_t len, size_t skip_before, struct guard_result *res);

struct guard_policy {
	char *name;
	void *dbs[GUARD_GROUPS];	/* hs_database_t per group, ends only */
	const void *db;			/* the first of dbs, NULL when nothing to scan */
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
