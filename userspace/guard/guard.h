/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guardrails: find sensitive data, secrets, prompt injections and
 * off-topic text, and mask, block or flag it.
 *
 * A policy (guardrails.policies[] in the config) is compiled once into one
 * Hyperscan database holding every pattern it uses: the built-in
 * detectors', its custom regexes, its word lists and topic keywords.  A
 * scan is one pass of that database over a text; Hyperscan's candidates
 * then go through the detector's validator (Luhn, mod-97, SSN area rules,
 * octet ranges...), so a 16-digit order number that fails Luhn is no card.
 *
 *   guard_scan(pol, scratch, text, len, &res)     -> res.hits, res.blocked
 *   guard_mask(scratch, text, len, &out)          -> text with [EMAIL]...
 *   guard_rewrite_json(pol, scratch, body, &out)  -> the request, masked
 *   guard_window_feed/finish                      -> a stream, held back
 *
 * A policy is immutable after guard_policy_compile() and shared by every
 * worker; a struct guard_scratch belongs to one thread (Hyperscan scratch
 * plus the match list) and grows once, then is reused without allocation.
 */
#ifndef SLUICE_GUARD_GUARD_H
#define SLUICE_GUARD_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

/* Entities: the built-in detectors, then topics, then custom rules. */
enum guard_entity {
	GUARD_EMAIL,
	GUARD_PHONE,
	GUARD_CREDIT_CARD,
	GUARD_IBAN,
	GUARD_US_SSN,
	GUARD_IP_ADDRESS,
	GUARD_SECRETS,
	GUARD_PROMPT_INJECTION,
	GUARD_BUILTIN_N,
	GUARD_TOPIC = GUARD_BUILTIN_N,	/* a denied topic, or none of the allowed */
	GUARD_CUSTOM0,			/* custom[i] is GUARD_CUSTOM0 + i */
};
#define GUARD_CUSTOM_MAX	48
#define GUARD_ENTITY_MAX	(GUARD_CUSTOM0 + GUARD_CUSTOM_MAX)	/* fits a u64 mask */

/* Ordered by severity: a text's action is the highest of its hits. */
enum guard_action { GUARD_OFF = 0, GUARD_FLAG, GUARD_MASK, GUARD_BLOCK };

/* The config side of one custom rule (regex or words, not both). */
struct guard_custom_spec {
	char *name;		/* [a-z0-9_]+, shown in errors, headers, metrics */
	char *regex;		/* Hyperscan syntax; (?i) and friends allowed */
	char **words;		/* literal words/phrases, matched case-insensitively */
	size_t nwords;
	enum guard_action action;
	unsigned line;		/* for compile errors: file:line */
};

/* What a policy is made of, as the config loader reads it. */
struct guard_policy_spec {
	char *name;
	enum guard_action detect[GUARD_BUILTIN_N];	/* default off */
	struct guard_custom_spec *custom;
	size_t ncustom;
	char **topics_deny;
	size_t ntopics_deny;
	char **topics_allow;
	size_t ntopics_allow;
	enum guard_action topics_action;	/* default block */
	bool response;			/* response.enabled, default true */
	unsigned hold_back;		/* response.hold_back, default 64 bytes */
};

/* The example policy of config/sluice.example.yaml (email, phone, iban,
 * us_ssn: mask; credit_card, secrets: block; ip_address,
 * prompt_injection: flag; responses on, hold_back 64), for tests and the
 * benchmark.  Sets every field; owns nothing. */
void guard_spec_example(struct guard_policy_spec *spec);

struct guard_policy;	/* compiled; opaque */

/* Compile spec into a policy.  0, or -EINVAL with why[] saying what
 * Hyperscan refused and *bad_line the custom rule's line (0 when no
 * single rule is to blame).  The policy keeps its own copy of names. */
int guard_policy_compile(const struct guard_policy_spec *spec, struct guard_policy **out,
			 char *why, size_t whylen, unsigned *bad_line);
void guard_policy_free(struct guard_policy *p);
void guard_policy_spec_free(struct guard_policy_spec *spec);

const char *guard_policy_name(const struct guard_policy *p);
bool guard_policy_response(const struct guard_policy *p);
unsigned guard_policy_hold_back(const struct guard_policy *p);
/* The entity's name ("email", "credit_card", "topic", a custom name) and
 * the action the policy gives it. */
const char *guard_entity_name(const struct guard_policy *p, unsigned entity);
enum guard_action guard_entity_action(const struct guard_policy *p, unsigned entity);
const char *guard_action_name(enum guard_action a);
/* "mask" -> GUARD_MASK...; 0 or -EINVAL. */
int guard_action_parse(const char *s, enum guard_action *out);
/* The built-in detector named s ("email"...), or -1. */
int guard_builtin_parse(const char *s);

/* One accepted match, in the offsets of the scanned text. */
struct guard_match {
	uint32_t from, to;
	uint16_t entity;
	uint8_t action;
};

/* Per-thread working memory; zero-initialise, then guard_scratch_free(). */
struct guard_scratch {
	void *hs;			/* hs_scratch_t */
	const void *hs_db;		/* the database hs was last sized for */
	struct guard_match *cand;	/* raw candidates of one scan */
	size_t ncand, cand_cap;
	struct guard_match *match;	/* accepted, non-overlapping, by offset */
	size_t nmatch, match_cap;
	bool overflow;			/* more candidates than GUARD_CAND_MAX */
	struct buf text;		/* the strings of a body, unescaped */
	struct guard_seg {		/* where each came from */
		const char *raw;	/* the JSON string, quotes included */
		size_t raw_len;
		size_t at, len;		/* its text in `text` */
	} *seg;
	size_t nseg, seg_cap;
	struct buf tmp;
};
#define GUARD_CAND_MAX	(1u << 20)

void guard_scratch_free(struct guard_scratch *s);

/* What a scan found. */
struct guard_result {
	uint64_t hits;		/* bit per entity seen (any action but off) */
	uint64_t masked;	/* entities masked */
	uint64_t flagged;	/* entities flagged */
	uint64_t blocked;	/* entities that block */
	bool allow_seen;	/* some topics.allow keyword appeared */
};

/* Scan text; accepted matches land in s->match (non-overlapping, in
 * order) and are ORed into *res.  0, -ENOMEM, or -E2BIG when the text
 * holds more candidates than GUARD_CAND_MAX (the caller fails closed). */
int guard_scan(const struct guard_policy *p, struct guard_scratch *s, const char *text,
	       size_t len, struct guard_result *res);

/* The topics rule once the whole text has been scanned: with an allow
 * list and no allowed keyword seen, the text is off-topic. */
void guard_finish_topics(const struct guard_policy *p, struct guard_result *res);

/* Append text[from, upto) to out with every span of s->match (the mask
 * matches of the last scan) replaced by its placeholder ("[EMAIL]").
 * Spans starting before from are skipped, one reaching past upto is cut
 * there.  0 or -ENOMEM. */
int guard_mask_append(const struct guard_policy *p, const struct guard_scratch *s,
		      const char *text, size_t from, size_t upto, struct buf *out);

/* Rewrite a request body (json_parse() accepted it): the text of every
 * string value but the structural ones (model, role, type, ids...) is
 * scanned; strings with masked matches are re-escaped in place, every
 * other byte of the body stays as it was.  *rewritten says whether out
 * holds a new body (else the original stands).  0, -ENOMEM, -E2BIG. */
int guard_rewrite_json(const struct guard_policy *p, struct guard_scratch *s,
		       const char *body, size_t len, struct buf *out, bool *rewritten,
		       struct guard_result *res);

/* A streamed response's text, released only once no match can still
 * grow across it: the last hold_back bytes (or from the start of a match
 * that reaches into them) stay held until more text or the end arrives. */
struct guard_window {
	const struct guard_policy *p;
	struct buf held;	/* context, then unreleased text (owned) */
	size_t ctx;		/* bytes at the front already released, kept so
				 * validators see what stood before the cut */
	bool blocked;		/* a blocking entity was seen: release nothing more */
	struct guard_result res;
};

void guard_window_init(struct guard_window *w, const struct guard_policy *p);
void guard_window_free(struct guard_window *w);
/* Add text; append what may go out (masked) to out.  0, -ENOMEM, -E2BIG.
 * After w->blocked is set nothing more is released. */
int guard_window_feed(struct guard_window *w, struct guard_scratch *s, const char *text,
		      size_t len, struct buf *out);
/* The stream ended: release the rest. */
int guard_window_finish(struct guard_window *w, struct guard_scratch *s, struct buf *out);

/* "email,secrets" for the entities of mask, in entity order.  Returns the
 * length written (NUL-terminated, truncated to fit). */
size_t guard_entity_list(const struct guard_policy *p, uint64_t mask, char *dst, size_t cap);

#endif
